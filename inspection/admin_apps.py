"""Django's admin app with Rustwatch's site (named in settings.INSTALLED_APPS).

Its own module: INSTALLED_APPS imports it before the models are ready, and the
site (inspection/admin_site.py) needs the roles, hence the models.
"""

from django.contrib.admin.apps import AdminConfig


class RustwatchAdminConfig(AdminConfig):
    default_site = "inspection.admin_site.RustwatchAdminSite"
