"""API of the model registry and of retraining (issue 5).

    GET  /api/v1/models/                  model versions (any signed-in user; ?kind= ?state=)
    GET  /api/v1/models/{id}/             one version, with its comparison to production
    POST /api/v1/models/{id}/promote/     staff: {"override": false} → production (409 when worse)
    POST /api/v1/models/rollback/         staff: {"kind": "recognizer"} → the previous production
    POST /api/v1/models/train/            staff: {"kind": "recognizer", "steps": ..., ...} → 202 TrainingJob
    GET  /api/v1/training-jobs/[{id}/]    staff: progress, live metrics, the candidate made
    POST /api/v1/training-jobs/{id}/cancel/  staff
    POST /api/v1/ground-truth/import/     multipart `image` + `xml` (PAGE or ALTO) → 201 page of ground truth

Staff-only actions answer 403 to other users; objects a user may not see answer 404.
"""

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from quire.documents.models import Document
from quire.documents.storage import StorageUnavailable
from quire.jobs.models import TrainingJob
from quire.registry import groundtruth, services
from quire.registry.models import ModelVersion

from .errors import ApiError
from .parsers import ObjectJSONParser
from .views import _document_name, _over_limit

STAFF_ACTIONS = {"promote", "rollback", "train"}


class IsStaff(permissions.BasePermission):
    message = "staff only: this action needs a staff account"

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class ModelVersionSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:model-detail", lookup_field="pk")
    name = serializers.CharField(read_only=True)
    parent_version = serializers.CharField(source="parent.version", default=None, read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    comparison = serializers.SerializerMethodField(help_text="Held-out CER beside the production version's "
                                                             "(same run), or null when not comparable.")

    class Meta:
        model = ModelVersion
        fields = ["id", "url", "kind", "version", "name", "state", "metrics", "parent", "parent_version",
                  "training_job", "created_by", "created_at", "promoted_at", "sha256", "comparison"]
        read_only_fields = fields

    def get_comparison(self, obj) -> dict | None:
        current = self.context.get("production", {}).get(obj.kind)
        if current is None or current.pk == obj.pk:
            return None
        return services.comparison(obj, current)


class TrainingJobSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:training-job-detail", lookup_field="pk")
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    candidate = serializers.SerializerMethodField()

    class Meta:
        model = TrainingJob
        fields = ["id", "url", "kind", "state", "progress", "metrics", "params", "created_by", "created_at",
                  "started_at", "finished_at", "attempts", "error_code", "error_message", "candidate"]
        read_only_fields = fields

    def get_candidate(self, obj) -> dict | None:
        made = list(obj.modelversion_set.all())
        if not made:
            return None
        version = made[0]
        return {"id": version.pk, "version": version.version, "state": version.state,
                "url": reverse("api:model-detail", args=[version.pk], request=self.context.get("request"))}


class PromoteSerializer(serializers.Serializer):
    override = serializers.BooleanField(default=False, help_text="Promote even when worse than production.")


class KindSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ModelVersion.Kind.choices)


def _registry_error(exc: services.RegistryError) -> ApiError:
    return ApiError(exc.status, exc.message, type(exc).__name__)


class ModelVersionViewSet(viewsets.ReadOnlyModelViewSet):
    """Model versions of the registry; promote, roll back and retrain are staff-only."""

    lookup_value_converter = "int"
    serializer_class = ModelVersionSerializer
    parser_classes = [ObjectJSONParser, FormParser, MultiPartParser]

    def get_permissions(self):
        if self.action in STAFF_ACTIONS:
            return [permissions.IsAuthenticated(), IsStaff()]
        return [permissions.IsAuthenticated()]

    def get_queryset(self):
        queryset = ModelVersion.objects.select_related("parent", "created_by").order_by("kind", "-created_at", "-id")
        for name, choices in (("kind", ModelVersion.Kind.values), ("state", ModelVersion.State.values)):
            if (value := self.request.query_params.get(name)) is not None:
                if value not in choices:
                    raise ApiError(400, f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
                queryset = queryset.filter(**{name: value})
        return queryset

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["production"] = {v.kind: v for v in ModelVersion.objects.filter(state=ModelVersion.State.PRODUCTION)}
        return context

    @extend_schema(request=PromoteSerializer, responses=ModelVersionSerializer)
    @action(detail=True, methods=["post"])
    def promote(self, request, pk=None):
        """Make this version production (the current one is archived). A candidate worse than
        production on held-out ground truth needs `override=true` (else 409)."""
        version = self.get_object()
        body = PromoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            version = services.promote(version, request.user, body.validated_data["override"])
        except services.RegistryError as exc:
            raise _registry_error(exc) from None
        return Response(self.get_serializer(version).data)

    @extend_schema(request=KindSerializer, responses=ModelVersionSerializer)
    @action(detail=False, methods=["post"])
    def rollback(self, request):
        """Archive the production version of `kind` and restore the one promoted before it."""
        body = KindSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            version = services.rollback(body.validated_data["kind"], request.user)
        except services.RegistryError as exc:
            raise _registry_error(exc) from None
        return Response(self.get_serializer(version).data)

    @extend_schema(request={"application/json": {"type": "object", "properties": {
        "kind": {"type": "string", "enum": ["recognizer"]},
        **{name: {"type": {int: "integer", float: "number", bool: "boolean"}[spec[0]], "default": spec[1]}
           for name, spec in services.TRAINING_PARAMS.items()}}}},
        responses={202: TrainingJobSerializer})
    @action(detail=False, methods=["post"])
    def train(self, request):
        """Start fine-tuning the production recognizer on the ground-truth lines (202 with the
        training job; 409 while one is queued or running; 400 for bad parameters)."""
        data = dict(request.data.items()) if hasattr(request.data, "items") else {}
        kind = data.pop("kind", ModelVersion.Kind.RECOGNIZER)
        try:
            job = services.start_training(str(kind), request.user, data)
        except services.RegistryError as exc:
            raise _registry_error(exc) from None
        body = TrainingJobSerializer(job, context=self.get_serializer_context()).data
        # str(): DRF's Hyperlink made wsgiref (runserver, the live test server) drop the response
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": str(body["url"])})


class TrainingJobViewSet(viewsets.ReadOnlyModelViewSet):
    """Training jobs (staff only): state, progress, live metrics (step, epoch, loss, held-out CER)."""

    lookup_value_converter = "int"
    serializer_class = TrainingJobSerializer
    permission_classes = [permissions.IsAuthenticated, IsStaff]

    def get_queryset(self):
        return (TrainingJob.objects.select_related("created_by")
                .prefetch_related(Prefetch("modelversion_set", ModelVersion.objects.order_by("-id")))
                .order_by("-created_at", "-id"))

    @extend_schema(request=None, responses=TrainingJobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a queued or running training job (a running one stops within a second or so)."""
        try:
            job = services.cancel_training(self.get_object())
        except services.RegistryError as exc:
            raise _registry_error(exc) from None
        return Response(self.get_serializer(job).data)


class GroundTruthImportView(APIView):
    """Import a page image with its PAGE XML or ALTO transcription as ground truth.

    Multipart: `image` (any accepted image type), `xml`, optional `document` (id of one of your
    documents) or `document_name`. 201 with the page id and line count.
    """

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request={"multipart/form-data": {"type": "object", "properties": {
        "image": {"type": "string", "format": "binary"}, "xml": {"type": "string", "format": "binary"},
        "document": {"type": "integer"}, "document_name": {"type": "string"}}}},
        responses={201: {"type": "object"}})
    def post(self, request):
        image, xml = request.FILES.get("image"), request.FILES.get("xml")
        if image is None or xml is None:
            raise ApiError(400, "send the page image in the multipart field 'image' and its PAGE XML or ALTO in 'xml'")
        if message := _over_limit(image):
            raise ApiError(413, message)
        document = None
        if (document_id := request.data.get("document")) not in (None, ""):
            try:
                document = Document.objects.for_user(request.user).get(pk=int(document_id))
            except (ValueError, Document.DoesNotExist):
                raise ApiError(404, f"no document with id {document_id!r}") from None
        try:
            page = groundtruth.import_page(request.user, image.read(), image.name, xml.read(), document,
                                           _document_name(request))
        except groundtruth.GroundTruthError as exc:
            raise ApiError(400, f"{xml.name}: {exc}") from None
        except groundtruth.UploadRejected as exc:
            raise ApiError(exc.status_code, exc.message) from None
        except StorageUnavailable as exc:
            raise ApiError(503, f"storage unavailable, try again later ({exc})") from None
        url = reverse("api:page-detail", args=[page.pk], request=request)
        return Response({"page": page.pk, "document": page.document_id, "lines": page.lines.count(), "url": url},
                        status=status.HTTP_201_CREATED, headers={"Location": url})
