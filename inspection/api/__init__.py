"""The REST API (/api/v1/): thin views that parse, authorise, call a service, render.

One module per resource, each with its serializers and views: catalog.py
(assets, inspections), photos.py, voc.py (import, export), tokens.py; base.py
holds what they share (input checking, versions, pagination), schema.py the
OpenAPI contract (error bodies, If-Match), serializers.py the output shapes
several resources answer with, errors.py the one exception handler.

Who may do what (inspection/roles.py; a higher role may do all a lower may):
- any role (integration, inspector, supervisor): read assets, inspections,
  photos, boxes, history; upload photos; see and rotate their own API token
- inspector: create and edit inspections, save boxes, set verdicts, import VOC zips,
  accept or reject model suggestions on photos they uploaded themselves
- supervisor: create, edit and delete assets, delete inspections (only when
  empty: never a photo lost), review any photo's suggestions, export VOC zips,
  issue and revoke tokens for others
Anonymous requests get 401; a user without a role gets 403 everywhere.
"""
