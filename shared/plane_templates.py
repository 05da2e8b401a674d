"""Plane's own e-mail templates, rendered as Plane renders them (Django's template engine).

Plane's templates are not shipped here. An operator who wants Plane's mails to look like Plane's
points PLANE_TEMPLATES_DIR at Plane's `templates` folder (mounted from Plane's API image; the chart
has `extraVolumes` for that), and each mail Plane sends from a template is rendered from the same
file with the same context. Without the folder, or when a template cannot be read or rendered,
`render` says so in the log and returns None, and the caller sends its own plain HTML: a mail is
never lost to a template.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping

from django.conf import settings as django_settings
from django.template import Context, Engine, TemplateDoesNotExist, TemplateSyntaxError

from shared.settings import Settings

log = logging.getLogger(__name__)


@functools.cache
def _engine(directory: str) -> Engine:
    if not django_settings.configured:
        # Only what the built-in tags and filters read; no i18n, which would need Django's apps.
        django_settings.configure(USE_TZ=True, TIME_ZONE="UTC", USE_I18N=False)
    # Django's defaults for a DjangoTemplates backend: autoescape on, missing variables empty.
    return Engine(dirs=[directory], autoescape=True)


def render(settings: Settings, name: str, context: Mapping[str, object]) -> str | None:
    """`name` (e.g. `emails/notifications/webhook-deactivate.html`) from PLANE_TEMPLATES_DIR."""
    if not settings.plane_templates_dir:
        return None
    try:
        template = _engine(settings.plane_templates_dir).get_template(name)
        return template.render(Context(dict(context)))
    except (TemplateDoesNotExist, TemplateSyntaxError, OSError, UnicodeDecodeError) as exc:
        log.error("Plane template %s not used (%r); the built-in mail goes instead", name, exc)
        return None
    except Exception as exc:  # a tag or filter failing while rendering: the mail still goes
        log.error(
            "Plane template %s failed to render (%s); the built-in mail goes instead",
            name,
            type(exc).__name__,
        )
        return None
