"""Admin for documents, pages and lines (lines inline, versions read-only)."""
from django.contrib import admin

from .models import Document, Line, LineVersion, Page


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "created_at")
    list_select_related = ("owner",)
    search_fields = ("name", "owner__username")
    raw_id_fields = ("owner",)


@admin.register(Page)
class PageAdmin(admin.ModelAdmin):
    list_display = ("id", "document", "order", "filename", "width", "height", "created_at")
    list_select_related = ("document",)
    search_fields = ("filename", "sha256", "document__name")
    raw_id_fields = ("document",)
    readonly_fields = ("sha256", "original", "image", "width", "height", "source_format", "frame_index")


class LineVersionInline(admin.TabularInline):
    model = LineVersion
    extra = 0
    readonly_fields = ("source", "text", "user", "created_at")
    fields = readonly_fields
    can_delete = False


@admin.register(Line)
class LineAdmin(admin.ModelAdmin):
    list_display = ("id", "page", "index", "text", "confidence", "is_ground_truth")
    list_select_related = ("page__document",)
    list_filter = ("is_ground_truth",)
    search_fields = ("text",)
    raw_id_fields = ("page",)
    inlines = [LineVersionInline]
