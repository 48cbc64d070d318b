"""mkdocs build hook: the configuration reference (docs/configuration.md) is written from the YAML files
of conf/ at build time, every key with its comment as the files state it, so it cannot drift
from the configs the commands read."""

from __future__ import annotations

from pathlib import Path

CONF = Path(__file__).resolve().parents[1] / "conf"
MARKER = "<!-- configuration reference -->"
GROUP_TITLES = {
    ".": "`python -m fststyle.train`, `fststyle.optimize`, `fststyle.prepare`: the top-level configs",
    "cli": "`fststyle.infer`, `fststyle.export`, `fststyle.eval`: their configs (plain values, not groups)",
}


def config_reference(conf: Path = CONF) -> str:
    """Markdown: one section per config folder, each YAML file in full (its keys, defaults and comments)."""
    folders = sorted({p.parent for p in conf.rglob("*.yaml")}, key=lambda f: (f != conf, str(f)))
    parts = []
    for folder in folders:
        group = str(folder.relative_to(conf))
        title = GROUP_TITLES.get(group, f"`{group}=`: the `{group}` group (`{group}=NAME` picks a file)")
        parts.append(f"## {title}\n")
        for path in sorted(folder.glob("*.yaml")):
            name = path.relative_to(conf).as_posix()
            parts.append(f"### `{name}`\n\n```yaml\n{path.read_text().rstrip()}\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, **_) -> str:  # noqa: ANN001 (mkdocs' page object)
    if page.file.src_uri == "configuration.md":
        return markdown.replace(MARKER, config_reference())
    return markdown
