"""Routes of the web page at the site root (namespace `web`)."""
from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "web"

urlpatterns = [
    path("", views.document_list, name="documents"),
    path("login/", views.ThrottledLoginView.as_view(template_name="quire/web/login.html",
                                                redirect_authenticated_user=True,
                                                next_page="web:documents"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="web:login"), name="logout"),
    path("documents/<int:pk>/", views.document_detail, name="document"),
    path("pages/<int:pk>/", views.page_detail, name="page"),
    path("jobs/", views.job_list, name="jobs"),
    path("search/", views.search, name="search"),
    path("review/", views.review, name="review"),
    path("models/", views.model_list, name="models"),
]
