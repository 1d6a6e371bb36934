"""API tokens: /api/v1/tokens/ (supervisors, for integrations) and /api/v1/tokens/me/.

Tokens are hashed (django-rest-knox): a key is shown once, in the 201 answer
that made it, and never again. The writes and who may revoke what are in
inspection/services/tokens.py.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inspection.api.base import MAX_ID, InputSerializer, RowReference, Text, validated
from inspection.api.permissions import IsIntegration, IsSupervisor
from inspection.api.schema import errors
from inspection.models import ApiToken
from inspection.roles import user_role
from inspection.services.tokens import NAME_MAX, issue_token, revoke_token, token_list

# --- Serializers -------------------------------------------------------------


class TokenSerializer(serializers.ModelSerializer):
    """An API token without its key (only its first characters, to tell keys apart)."""

    user = serializers.CharField(source="user.username", read_only=True)
    role = serializers.SerializerMethodField()
    key_prefix = serializers.CharField(source="token_key", read_only=True)
    issued_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="Null: deleted user."
    )
    expiry = serializers.DateTimeField(read_only=True, allow_null=True, help_text="Null: never.")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "user", "role", "key_prefix", "created", "expiry", "issued_by"]
        read_only_fields = fields

    def get_role(self, token: ApiToken) -> str | None:
        role = user_role(token.user)
        return role.value if role else None


class NewTokenSerializer(TokenSerializer):
    """A token just made, with its key: the only time the key is shown."""

    key = serializers.CharField(read_only=True, help_text='Send as "Authorization: Token <key>".')

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "key"]
        read_only_fields = fields


def _expiry_field() -> serializers.IntegerField:
    return serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=settings.RUSTWATCH_TOKEN_MAX_DAYS,
        help_text=f"Days until the token stops working (default {settings.RUSTWATCH_TOKEN_DAYS}).",
    )


class Username(RowReference, Text):
    """A user's name; no such user is a 404."""


class OwnTokenCreateSerializer(InputSerializer):
    """A token for oneself."""

    name = Text(
        required=False,
        allow_blank=True,
        max_length=NAME_MAX,
        help_text='What uses it ("drone 7", "laptop"); default "token N".',
    )
    expires_in_days = _expiry_field()


class TokenCreateSerializer(OwnTokenCreateSerializer):
    """A token for a user (typically an integration)."""

    username = Username(max_length=150)

    def validate_username(self, value: str):
        user = get_user_model().objects.filter(username=value).first()
        if user is None:
            raise NotFound(f"No user named {value!r}.")
        return user


def _token(request: Request, token_id: int, *, own: bool) -> ApiToken:
    tokens = token_list(user=request.user if own else None)
    token = tokens.filter(pk=token_id).first() if token_id <= MAX_ID else None
    if token is None:
        raise NotFound(f"No API token with id {token_id}" + (" of yours." if own else "."))
    return token


def _created(token: ApiToken, key: str) -> Response:
    token.key = key  # not stored: this answer is the only place it appears
    return Response(NewTokenSerializer(token).data, status=status.HTTP_201_CREATED)


# --- Views -------------------------------------------------------------------


class TokenListView(APIView):
    permission_classes = [IsSupervisor]

    @extend_schema(
        summary="List API tokens",
        description="Supervisors. Every user's working tokens; keys are never shown.",
        responses={200: TokenSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        return Response(TokenSerializer(token_list(), many=True).data)

    @extend_schema(
        summary="Issue a token for a user",
        description=(
            "Supervisors, typically for an integration user (a drone, a robot). The key "
            "is in this answer only; the user's other tokens keep working. A name the "
            "user already uses is a 409."
        ),
        request=TokenCreateSerializer,
        responses={201: NewTokenSerializer, **errors(409)},
    )
    def post(self, request: Request) -> Response:
        data = validated(TokenCreateSerializer, request.data)
        token, key = issue_token(
            user=data["username"],
            issued_by=request.user,
            name=data.get("name"),
            expires_in_days=data.get("expires_in_days"),
        )
        return _created(token, key)


class TokenDetailView(APIView):
    permission_classes = [IsSupervisor]

    @extend_schema(
        summary="Revoke a token",
        description="Supervisors. Any user's token, by token id; it stops working at once.",
        responses={204: None},
    )
    def delete(self, request: Request, token_id: int) -> Response:
        revoke_token(token=_token(request, token_id, own=False), revoked_by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class OwnTokenListView(APIView):
    permission_classes = [IsIntegration]

    @extend_schema(
        summary="My API tokens",
        description="Any role. Your working tokens; keys are never shown again.",
        responses={200: TokenSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        return Response(TokenSerializer(token_list(user=request.user), many=True).data)

    @extend_schema(
        summary="Make myself a token",
        description=(
            "Any role. The key is in this answer only. Your other tokens keep working; "
            "revoke one with DELETE /api/v1/tokens/me/{id}/. A name in use is a 409."
        ),
        request=OwnTokenCreateSerializer,
        responses={201: NewTokenSerializer, **errors(409)},
    )
    def post(self, request: Request) -> Response:
        data = validated(OwnTokenCreateSerializer, request.data)
        token, key = issue_token(
            user=request.user,
            issued_by=request.user,
            name=data.get("name"),
            expires_in_days=data.get("expires_in_days"),
        )
        return _created(token, key)


class OwnTokenDetailView(APIView):
    permission_classes = [IsIntegration]

    @extend_schema(
        summary="Revoke one of my tokens",
        description="Any role. It stops working at once (also if it is the one in use).",
        responses={204: None},
    )
    def delete(self, request: Request, token_id: int) -> Response:
        revoke_token(token=_token(request, token_id, own=True), revoked_by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
