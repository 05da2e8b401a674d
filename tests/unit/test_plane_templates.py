"""Plane's templates rendered as Django renders them, and never at the cost of a mail."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from shared import plane_templates
from shared.settings import Settings

NAME = "emails/notifications/webhook-deactivate.html"


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    (tmp_path / "emails" / "notifications").mkdir(parents=True)
    return tmp_path


def settings_for(directory: Path | str) -> Settings:
    return replace(Settings.from_env({}), plane_templates_dir=str(directory))


def test_django_semantics_autoescape_filters_and_missing_variables(templates: Path):
    (templates / NAME).write_text(
        "<title>{{ message }}</title><a href='{{ webhook_url }}'>{{ email|upper }}</a>"
        "{% if reason %}never{% endif %}[{{ not_given }}]"
    )
    html = plane_templates.render(
        settings_for(templates),
        NAME,
        {"message": "Webhook <b>x</b> off", "webhook_url": "http://p/a?b=1&c=2", "email": "o@e.x"},
    )
    assert html == (
        "<title>Webhook &lt;b&gt;x&lt;/b&gt; off</title><a href='http://p/a?b=1&amp;c=2'>O@E.X</a>[]"
    )


def test_no_folder_configured_means_the_built_in_mail():
    assert plane_templates.render(settings_for(""), NAME, {}) is None


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "TemplateDoesNotExist"),
        ("{% if %}", "TemplateSyntaxError"),
        (b"\xff\xfe", "UnicodeDecodeError"),
    ],
)
def test_an_unusable_template_is_logged_and_the_built_in_mail_goes(templates, caplog, content, error):
    if isinstance(content, str):
        (templates / NAME).write_text(content)
    elif content is not None:
        (templates / NAME).write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="shared.plane_templates"):
        assert plane_templates.render(settings_for(templates), NAME, {"message": "m"}) is None
    assert error in caplog.text and NAME in caplog.text
