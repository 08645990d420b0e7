"""The documentation site (make docs) as a reader sees it, in headless Chromium.

Each reference page must list every option its plugin or role documents, with the type and
the default the source declares; the options come from the sources (DOCUMENTATION, the
collection's doc fragments, meta/argument_specs.yml), not from the site. Screenshots must
show a styled page: dark navigation beside a light text column.
"""

import json
import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "docs" / "build" / "html"
PAGES = SITE / "collections" / "netmagic" / "netfilter"
SHOTS = REPO / ".build" / "docs-screenshots"
WINDOW = (1280, 1600)
# How antsibull-docs names the types of the argument spec.
TYPE_NAMES = {"str": "string", "int": "integer", "bool": "boolean", "dict": "dictionary",
              "raw": "any", "list": "list", "path": "path", "float": "float"}
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
ROLES = sorted(p.parent.parent.name for p in REPO.glob("roles/*/meta/argument_specs.yml"))


def _yaml_block(path, marker):
    """The YAML of a `NAME = r\"\"\"...\"\"\"` block in a Python file."""
    source = path.read_text()
    start = source.index(marker + ' = r"""') + len(marker) + 7
    return yaml.safe_load(source[start:source.index('"""', start)])


def _plugin_options(path):
    """A plugin's own options plus those of the collection's doc fragments it extends."""
    documentation = _yaml_block(path, "DOCUMENTATION")
    own = documentation.get("options") or {}
    options = {}
    for fragment in documentation.get("extends_documentation_fragment") or []:
        if fragment.startswith("netmagic.netfilter."):
            parts = fragment.split(".")
            fragment_file = REPO / "plugins" / "doc_fragments" / (parts[2] + ".py")
            options.update(_yaml_block(fragment_file, "    %s" % (parts[3].upper() if len(parts) > 3 else "DOCUMENTATION"))["options"])
    # As Ansible merges them: the plugin's own keys of an option over the fragment's.
    return {name: dict(options.get(name, {}), **own.get(name, {})) for name in set(options) | set(own)}


def _flatten(options, prefix=""):
    """{path: spec} for options and their suboptions, paths as the site's anchors write them."""
    flat = {}
    for name, spec in options.items():
        flat[prefix + name] = spec
        flat.update(_flatten(spec.get("suboptions") or spec.get("options") or {}, prefix + name + "/"))
    return flat


def _type_line(spec):
    parts = [TYPE_NAMES.get(spec.get("type", "str"), spec.get("type", "str"))]
    if "elements" in spec:
        parts.append("elements=" + TYPE_NAMES.get(spec["elements"], spec["elements"]))
    if spec.get("required"):
        parts.append("required")
    return " / ".join(parts)


# Elements without an end tag: they must not count as nesting.
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _OptionRows(HTMLParser):
    """Per option anchor (`parameter-...`): its type line and the default it shows."""

    def __init__(self):
        super().__init__()
        self.options = {}
        self._current = None
        self._capture = None  # (field, depth) while inside a type span or a default code
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        if tag not in _VOID:
            self._depth += 1
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if "ansibleOptionAnchor" in classes:
            # Anchors of return values (return-...) end the options.
            anchor = attrs.get("id") or ""
            self._current = {"type": "", "default": None} if anchor.startswith("parameter-") else None
            if self._current is not None:
                self.options[anchor[len("parameter-"):]] = self._current
        elif self._current is not None and self._capture is None:
            if tag == "p" and "ansible-option-type-line" in classes:
                self._capture = ("type", self._depth)
            elif tag == "code" and ({"ansible-option-default", "ansible-option-default-bold"} & set(classes)):
                self._current["default"] = ""
                self._capture = ("default", self._depth)

    def handle_endtag(self, tag):
        if self._capture and self._capture[1] == self._depth:
            self._capture = None
        self._depth -= 1

    def handle_data(self, data):
        if self._capture:
            self._current[self._capture[0]] += data


class _Links(HTMLParser):
    """Every link target of a page."""

    def __init__(self):
        super().__init__()
        self.links = set()

    def handle_starttag(self, tag, attrs):
        if tag == "a" and dict(attrs).get("href"):
            self.links.add(dict(attrs)["href"].split("#")[0])


def _chromium(*arguments):
    browser = shutil.which("chromium")
    assert browser, "chromium is not installed (make docs-test installs it)"
    with tempfile.TemporaryDirectory() as home:
        # Chromium writes to ~/.config even with its own profile folder.
        return subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             "--user-data-dir=" + os.path.join(home, "profile"), "--window-size=%d,%d" % WINDOW, *arguments],
            env=dict(os.environ, HOME=home), capture_output=True, text=True, timeout=120, check=True)


def rendered_options(page):
    """The options of a page as the browser's DOM has them."""
    assert page.is_file(), "%s is missing: run make docs" % page.relative_to(REPO)
    parser = _OptionRows()
    parser.feed(_chromium("--dump-dom", page.as_uri()).stdout)
    return {name: {"type": " ".join(row["type"].split()), "default": row["default"]}
            for name, row in parser.options.items()}


def assert_lists_every_option(page, options, anchor_prefix=""):
    shown = rendered_options(page)
    for path, spec in _flatten(options).items():
        row = shown.get(anchor_prefix + path)
        assert row is not None, "%s does not list option %s" % (page.name, path)
        assert row["type"] == _type_line(spec), "%s: option %s has type %r" % (page.name, path, row["type"])
        if "default" in spec and spec["default"] is not None:
            assert row["default"] is not None, "%s: option %s shows no default" % (page.name, path)
            assert json.loads(row["default"]) == spec["default"], "%s: option %s shows default %s" % (page.name, path, row["default"])
        else:
            assert row["default"] is None, "%s: option %s shows a default it does not have" % (page.name, path)


@pytest.mark.parametrize("module", MODULES)
def test_module_page_lists_every_option_with_type_and_default(module):
    assert_lists_every_option(PAGES / (module + "_module.html"), _plugin_options(REPO / "plugins" / "modules" / (module + ".py")))


def test_connection_page_lists_every_option_with_type_and_default():
    assert_lists_every_option(PAGES / "netns_connection.html", _plugin_options(REPO / "plugins" / "connection" / "netns.py"))


@pytest.mark.parametrize("role", ROLES)
def test_role_page_lists_every_variable_of_each_entry_point(role):
    specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    for entry_point, spec in specs.items():
        assert_lists_every_option(PAGES / (role + "_role.html"), spec.get("options") or {}, entry_point + "--")


def test_front_page_links_the_guides_and_every_reference_page():
    parser = _Links()
    parser.feed(_chromium("--dump-dom", (SITE / "index.html").as_uri()).stdout)
    for page in ["quickstart.html", "rule-layout.html", "engines.html"]:
        assert page in parser.links, "front page does not link %s" % page
        assert (SITE / page).is_file()
    index = (PAGES / "index.html").read_text()
    for module in MODULES:
        assert module + "_module.html" in index
    for role in ROLES:
        assert role + "_role.html" in index
    assert "netns_connection.html" in index


def _luminance(image, box):
    """Mean luminance (0 black .. 255 white) of a region and the share of dark pixels in it."""
    region = image.crop(box).convert("L")
    histogram = region.histogram()
    pixels = sum(histogram)
    mean = sum(value * count for value, count in enumerate(histogram)) / pixels
    return mean, sum(histogram[:100]) / pixels


@pytest.mark.parametrize("module", MODULES)
def test_module_page_screenshot_shows_a_styled_page_with_text(module):
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / (module + ".png")
    shot.unlink(missing_ok=True)
    _chromium("--screenshot=" + str(shot), (PAGES / (module + "_module.html")).as_uri())
    with Image.open(shot) as image:
        assert image.size == WINDOW
        width, height = image.size
        # The theme's navigation column (left, below the top bar) is dark grey: the style sheet loaded.
        navigation = _luminance(image, (0, 600, 200, height))[0]
        assert navigation < 90, "navigation column not dark (mean luminance %.0f): no style sheet?" % navigation
        # The content column is light, with text in it: neither blank nor a solid block.
        content, dark_share = _luminance(image, (360, 0, width - 60, height))
        assert content > 180, "content column not light (mean luminance %.0f)" % content
        assert 0.01 < dark_share < 0.4, "content column has %.1f%% dark pixels: no text?" % (100 * dark_share)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50, "too few colours for a rendered page"
