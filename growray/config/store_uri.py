"""Which MLflow tracking URIs growray accepts: plain string rules, no pydantic, so a store
query (``growray ls``) checks its ``--tracking-uri`` without importing the schema."""

from __future__ import annotations

__all__ = ["tracking_uri_problem"]


def tracking_uri_problem(uri: str) -> str | None:
    """Why ``uri`` is not an MLflow store growray can use (None when it is one): a plain path
    (MLflow 3 needs a URI), the file store (in maintenance mode), or ``sqlite://x`` (two
    slashes: a host, not a path)."""
    if "://" not in uri and not uri.startswith("databricks"):
        return (
            f"a tracking URI such as sqlite:///{uri} (a database file) or http://127.0.0.1:5000 (a server); "
            "MLflow 3 takes no plain folder or file path"
        )
    if uri.startswith("file:"):
        return "the file store is in maintenance mode in MLflow 3: use sqlite:///mlflow.db or a server URL"
    if uri.startswith("sqlite://") and not uri.startswith("sqlite:///"):
        return f"sqlite URIs have three slashes before a relative path (sqlite:///{uri[len('sqlite://') :]}), four before an absolute one"
    return None
