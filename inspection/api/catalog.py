"""Assets and inspections: /api/v1/assets/ and /api/v1/inspections/.

Any role reads; inspectors create and edit inspections; supervisors create,
edit and delete assets and delete inspections (only when empty: never a photo
lost). Names in use are a 409 from the service.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from inspection import selectors
from inspection.api.base import (
    MAX_ID,
    InputSerializer,
    Name,
    ObjectId,
    Pagination,
    QuerySerializer,
    RolePermissionsMixin,
    Text,
    validated,
)
from inspection.api.permissions import IsInspector, IsSupervisor
from inspection.api.schema import errors
from inspection.models import Asset, Inspection
from inspection.services.catalog import (
    create_asset,
    create_inspection,
    delete_asset,
    delete_inspection,
    update_asset,
    update_inspection,
)

# --- Serializers -------------------------------------------------------------


class AssetSerializer(serializers.ModelSerializer):
    inspection_count = serializers.IntegerField(read_only=True)
    photo_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Asset
        fields = [
            "id",
            "name",
            "kind",
            "description",
            "created_at",
            "inspection_count",
            "photo_count",
        ]
        read_only_fields = fields


class AssetCreateSerializer(InputSerializer):
    """A new asset; a name in use is a 409 from the service."""

    name = Name(max_length=200)
    kind = serializers.ChoiceField(choices=Asset.Kind.choices, default=Asset.Kind.OTHER)
    description = Text(required=False, allow_blank=True, default="")


class _PatchSerializer(InputSerializer):
    """A partial update: only the fields sent, at least one."""

    min_fields = 1  # the schema's minProperties

    def validate(self, attrs: dict) -> dict:
        if not attrs:
            raise serializers.ValidationError(
                f"Send at least one field to change: {', '.join(self.fields)}."
            )
        return attrs


class AssetUpdateSerializer(_PatchSerializer):
    """PATCH of an asset; a name in use is a 409 from the service."""

    name = Name(max_length=200, required=False)
    kind = serializers.ChoiceField(choices=Asset.Kind.choices, required=False)
    description = Text(required=False, allow_blank=True)


class InspectionSerializer(serializers.ModelSerializer):
    asset_name = serializers.CharField(source="asset.name", read_only=True)
    created_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    photo_count = serializers.IntegerField(read_only=True)
    unlabelled_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Inspection
        fields = [
            "id",
            "asset",
            "asset_name",
            "name",
            "date",
            "notes",
            "created_by",
            "created_at",
            "photo_count",
            "unlabelled_count",
        ]
        read_only_fields = fields


class InspectionCreateSerializer(InputSerializer):
    """A new inspection of an asset; the name is unique per asset (409)."""

    asset = ObjectId(Asset.objects.all())
    name = Name(max_length=200)
    date = serializers.DateField(required=False, allow_null=True, default=None)
    notes = Text(required=False, allow_blank=True, default="")


class InspectionUpdateSerializer(_PatchSerializer):
    """PATCH of an inspection (it stays with its asset); a name in use is a 409."""

    name = Name(max_length=200, required=False)
    date = serializers.DateField(required=False, allow_null=True)
    notes = Text(required=False, allow_blank=True)


class InspectionFilterSerializer(QuerySerializer):
    """Query parameters of the inspection list."""

    asset = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, help_text="Only this asset's inspections."
    )


# --- Views -------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List assets", description="Any role."),
    retrieve=extend_schema(summary="One asset", description="Any role."),
    create=extend_schema(
        summary="Create an asset",
        description="Supervisors. A name in use is a 409.",
        request=AssetCreateSerializer,
        responses={201: AssetSerializer, **errors(409)},
    ),
    partial_update=extend_schema(
        summary="Edit an asset",
        description="Supervisors. Any of name, kind, description. A name in use is a 409.",
        request=AssetUpdateSerializer,
        responses={200: AssetSerializer, **errors(409)},
    ),
    destroy=extend_schema(
        summary="Delete an asset",
        description=(
            "Supervisors. Only an asset without inspections: otherwise a 409 saying "
            "how many inspections and photos it still has (nothing is deleted)."
        ),
        responses={204: None, **errors(409)},
    ),
)
class AssetViewSet(
    RolePermissionsMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = AssetSerializer
    pagination_class = Pagination
    action_permissions = {
        "create": IsSupervisor,
        "partial_update": IsSupervisor,
        "destroy": IsSupervisor,
    }

    def get_queryset(self):
        return selectors.asset_list()

    def create(self, request: Request) -> Response:
        data = validated(AssetCreateSerializer, request.data)
        asset = create_asset(**data, user=request.user)
        out = selectors.asset_list().get(pk=asset.pk)
        return Response(self.get_serializer(out).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        asset = self.get_object()
        data = validated(AssetUpdateSerializer, request.data)
        asset = update_asset(asset=asset, **data)
        return Response(self.get_serializer(selectors.asset_list().get(pk=asset.pk)).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        delete_asset(asset=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(
        summary="List inspections",
        description="Any role. Newest first.",
        parameters=[InspectionFilterSerializer],
    ),
    retrieve=extend_schema(summary="One inspection", description="Any role."),
    create=extend_schema(
        summary="Create an inspection",
        description="Inspectors. The name is unique per asset (409 otherwise).",
        request=InspectionCreateSerializer,
        responses={201: InspectionSerializer, **errors(409)},
    ),
    partial_update=extend_schema(
        summary="Edit an inspection",
        description=(
            "Inspectors. Any of name, date, notes; it stays with its asset. "
            "A name the asset already uses is a 409."
        ),
        request=InspectionUpdateSerializer,
        responses={200: InspectionSerializer, **errors(409)},
    ),
    destroy=extend_schema(
        summary="Delete an inspection",
        description=(
            "Supervisors. Only an inspection without photos: otherwise a 409 saying "
            "how many photos it still has (nothing is deleted)."
        ),
        responses={204: None, **errors(409)},
    ),
)
class InspectionViewSet(
    RolePermissionsMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = InspectionSerializer
    pagination_class = Pagination
    action_permissions = {
        "create": IsInspector,
        "partial_update": IsInspector,
        "destroy": IsSupervisor,
    }

    def get_queryset(self):
        if self.action != "list":
            return selectors.inspection_list()
        query = validated(InspectionFilterSerializer, self.request.query_params)
        return selectors.inspection_list(asset_id=query.get("asset"))

    def create(self, request: Request) -> Response:
        data = validated(InspectionCreateSerializer, request.data)
        inspection = create_inspection(**data, user=request.user)
        out = selectors.inspection_list().get(pk=inspection.pk)
        return Response(self.get_serializer(out).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        inspection = self.get_object()
        data = validated(InspectionUpdateSerializer, request.data)
        inspection = update_inspection(inspection=inspection, **data)
        out = selectors.inspection_list().get(pk=inspection.pk)
        return Response(self.get_serializer(out).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        delete_inspection(inspection=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
