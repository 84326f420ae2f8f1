"""Reading experiment files: strict YAML, and the files an experiment refers to by name
(``search.space: growth_quickstart``, ``model: {space: darts_cnn}``) in ``search_spaces/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, ConfigIssue

__all__ = ["include_model_space", "include_search_space", "load_yaml", "resolve_space_file", "space_files"]


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys instead of silently keeping the last."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a name, not a {type(key).__name__}", key_node.start_mark
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file safely; syntax errors become a ConfigError with line and column."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), f"cannot read the file: {exc.strerror or exc}")]) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(where, f"YAML syntax error: {problem}")]) from None


def _space_candidates(ref: str, base_dir: Path | None) -> list[Path]:
    names = [ref] if Path(ref).suffix in (".yaml", ".yml") else [ref, f"{ref}.yaml", f"{ref}.yml"]
    # search_spaces/ folders first, so a space named like its experiment file finds the space
    roots: list[Path] = []
    if base_dir is not None:
        roots += [base_dir / "search_spaces", base_dir.parent / "search_spaces"]
    roots += [Path.cwd() / "search_spaces"]
    if base_dir is not None:
        roots += [base_dir, base_dir.parent]
    roots += [Path.cwd()]
    out: list[Path] = []
    for root in roots:
        for name in names:
            p = (root / name).resolve()
            if p not in out:
                out.append(p)
    return out


def space_files(folder: Path | None = None) -> list[tuple[str, str, list[str]]]:
    """The space files an experiment can name (``search_spaces/`` in ``folder``, default the
    working directory): ``(name, the header comment's first sentence, its keys)`` each.
    A search space's keys are the dotted paths it searches; an architecture space's are
    the model settings it fixes (``model: {space: darts_cnn}``)."""
    root = (folder or Path.cwd()) / "search_spaces"
    out: list[tuple[str, str, list[str]]] = []
    for path in sorted(root.glob("*.yaml")) if root.is_dir() else []:
        text = path.read_text(encoding="utf-8", errors="replace")
        header: list[str] = []
        for line in text.splitlines():
            if not line.startswith("#"):
                break
            header.append(line.lstrip("#").strip())
        joined = " ".join(h for h in header if h)
        first = joined.split(". ", 1)[0].rstrip(".") + "." if joined else ""
        try:
            data = load_yaml(path)
        except ConfigError:
            data = None
        keys = [str(k) for k in data] if isinstance(data, dict) else []
        out.append((path.stem, first, keys))
    return out


def resolve_space_file(ref: str, base_dir: Path | None, exclude: Path | None = None) -> tuple[Path | None, list[Path]]:
    """Find a search-space file by name or path (never ``exclude``, the experiment file itself)."""
    candidates = [p for p in _space_candidates(ref, base_dir) if exclude is None or p != exclude.resolve()]
    for p in candidates:
        if p.is_file():
            return p, candidates
    return None, candidates


def include_search_space(raw: dict[str, Any], base_dir: Path | None, source: Path | None) -> list[ConfigIssue]:
    """``search: {space: growth_quickstart}``: replace the file reference by the file's mapping
    (a mapping of parameter paths, optionally under a single ``space`` key)."""
    search = raw.get("search")
    if not isinstance(search, dict) or not isinstance(search.get("space"), str):
        return []
    ref = search["space"]
    found, searched = resolve_space_file(ref, base_dir, source)
    if found is None:
        search["space"] = {}
        return [
            ConfigIssue("search.space", "search-space file not found; looked in: " + ", ".join(map(str, searched)), ref)
        ]
    issues: list[ConfigIssue] = []
    try:
        loaded = load_yaml(found)
    except ConfigError as exc:
        issues += exc.issues
        loaded = {}
    if isinstance(loaded, dict) and set(loaded) == {"space"}:
        loaded = loaded["space"]
    if not isinstance(loaded, dict):
        issues.append(ConfigIssue("search.space", f"{found} must hold a mapping of parameter paths", ref))
        loaded = {}
    search["space"] = loaded
    return issues


def include_model_space(raw: dict[str, Any], base_dir: Path | None, source: Path | None) -> list[ConfigIssue]:
    """``model: {space: darts_cnn, channels: 8}``: the architecture-space file's ``model``
    mapping, then the keys given next to ``space`` on top of it."""
    section = raw.get("model")
    if not isinstance(section, dict) or "space" not in section:
        return []
    return _include_model_space(raw, section, base_dir, source)


def _include_model_space(
    raw: dict[str, Any], section: dict[str, Any], base_dir: Path | None, exclude: Path | None
) -> list[ConfigIssue]:
    """``model: {space: darts_cnn, channels: 8}``: the file's ``model`` mapping, then the keys
    given next to ``space`` on top of it."""
    ref = section["space"]
    if not isinstance(ref, str):
        return [ConfigIssue("model.space", "the name of an architecture-space file in search_spaces/", ref)]
    found, searched = resolve_space_file(ref, base_dir, exclude)
    if found is None:
        raw["model"] = {k: v for k, v in section.items() if k != "space"}
        return [
            ConfigIssue(
                "model.space", "architecture-space file not found; looked in: " + ", ".join(map(str, searched)), ref
            )
        ]
    try:
        loaded = load_yaml(found)
    except ConfigError as exc:
        return exc.issues
    if not isinstance(loaded, dict) or not isinstance(loaded.get("model"), dict):
        return [ConfigIssue("model.space", f"{found} must hold a 'model' mapping (an architecture space)", ref)]
    unknown = sorted(set(loaded) - {"model", "description"})
    if unknown:
        return [
            ConfigIssue("model.space", f"{found}: unknown top-level keys {unknown}; accepted: model, description", ref)
        ]
    raw["model"] = {**loaded["model"], **{k: v for k, v in section.items() if k != "space"}}
    return []
