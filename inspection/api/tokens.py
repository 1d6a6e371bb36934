"""API tokens: /api/v1/tokens/ (supervisors, for integrations) and /api/v1/tokens/me/.

The writes are in inspection/services/tokens.py; a key is shown only when it
is made.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inspection.api.base import InputSerializer, Text, validated
from inspection.api.permissions import IsIntegration, IsSupervisor
from inspection.roles import user_role
from inspection.services.tokens import issue_token, revoke_token, rotate_token

# --- Serializers -------------------------------------------------------------


class TokenSerializer(serializers.Serializer):
    """An API token without its key: lists show only its first characters."""

    user = serializers.CharField(source="user.username")
    role = serializers.SerializerMethodField()
    created = serializers.DateTimeField()
    key_prefix = serializers.SerializerMethodField()

    def get_role(self, token: Token) -> str | None:
        role = user_role(token.user)
        return role.value if role else None

    def get_key_prefix(self, token: Token) -> str:
        return token.key[:6]


class TokenWithKeySerializer(TokenSerializer):
    """A token with its key: shown when it is made, and to its owner."""

    key = serializers.CharField()


class TokenCreateSerializer(InputSerializer):
    username = Text(max_length=150)

    def validate_username(self, value: str) -> str:
        if not get_user_model().objects.filter(username=value).exists():
            raise serializers.ValidationError(f"No user named {value!r}.")
        return value


# --- Views -------------------------------------------------------------------


class TokenListView(APIView):
    permission_classes = [IsSupervisor]

    @extend_schema(
        summary="List API tokens",
        description="Supervisors. Keys are not shown, only their first characters.",
        responses={200: TokenSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        tokens = Token.objects.select_related("user").order_by("user__username")
        return Response(TokenSerializer(tokens, many=True).data)

    @extend_schema(
        summary="Issue a token for a user",
        description=(
            "Supervisors, typically for an integration user (a drone, a robot). The key "
            "is shown once here; issuing again replaces the old key."
        ),
        request=TokenCreateSerializer,
        responses={201: TokenWithKeySerializer},
    )
    def post(self, request: Request) -> Response:
        data = validated(TokenCreateSerializer, request.data)
        user = get_user_model().objects.get(username=data["username"])
        if user_role(user) is None:
            raise ValidationError(
                {"username": [f"{user.get_username()} has no role; add them to a group first."]}
            )
        if not user.is_active:
            raise ValidationError({"username": [f"{user.get_username()} is not active."]})
        token = issue_token(user=user, issued_by=request.user)
        return Response(TokenWithKeySerializer(token).data, status=status.HTTP_201_CREATED)


class TokenDetailView(APIView):
    permission_classes = [IsSupervisor]

    @extend_schema(
        summary="Revoke a user's token",
        description="Supervisors. By user id.",
        responses={204: None},
    )
    def delete(self, request: Request, user_id: int) -> Response:
        user = get_object_or_404(get_user_model(), pk=user_id)
        if not revoke_token(user=user, revoked_by=request.user):
            raise NotFound(f"{user.get_username()} has no token.")
        return Response(status=status.HTTP_204_NO_CONTENT)


class OwnTokenView(APIView):
    permission_classes = [IsIntegration]

    @extend_schema(
        summary="My API token",
        description="Any role. 404 if you have none yet (POST makes one).",
        responses={200: TokenWithKeySerializer},
    )
    def get(self, request: Request) -> Response:
        token = Token.objects.filter(user=request.user).select_related("user").first()
        if token is None:
            raise NotFound("You have no API token yet; POST here to create one.")
        return Response(TokenWithKeySerializer(token).data)

    @extend_schema(
        summary="Create or rotate my API token",
        description="Any role. The old key stops working at once.",
        request=None,
        responses={201: TokenWithKeySerializer},
    )
    def post(self, request: Request) -> Response:
        token = rotate_token(user=request.user)
        return Response(TokenWithKeySerializer(token).data, status=status.HTTP_201_CREATED)
