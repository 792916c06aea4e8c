"""A tiny Kubernetes API server for tests: the REST list / get endpoints the 等保 collector calls, over HTTP or HTTPS
on 127.0.0.1, with bearer-token authentication, loaded with plain Kubernetes objects (dicts).

There is no cluster on the test machines, so this stands in for kube-apiserver. It answers with what the real one
sends — ``<Kind>List`` documents (apiVersion / kind / metadata / items) and ``Status`` documents for 401, 403 and
404 — so the official ``kubernetes`` client talks to it unchanged, through a kubeconfig written by
:meth:`KubeApi.kubeconfig`. Label selectors support ``k=v``, ``k==v``, ``k!=v``, ``k`` and ``!k``.
"""

from __future__ import annotations

import copy
import http.server
import json
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

# kind → (API group/version, plural, namespaced)
KINDS: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("v1", "namespaces", False),
    "ResourceQuota": ("v1", "resourcequotas", True),
    "LimitRange": ("v1", "limitranges", True),
    "NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies", True),
    "Role": ("rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("rbac.authorization.k8s.io/v1", "rolebindings", True),
    "ClusterRole": ("rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
}
BY_PLURAL = {(group, plural): kind for kind, (group, plural, _) in KINDS.items()}
RBAC = "rbac.authorization.k8s.io"


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class KubeApi:
    """The server's state: objects by (kind, namespace, name), the token it accepts, kinds that answer 403, and a
    log of the requests (method, path with query, authorised)."""

    def __init__(self, token: str, objects: Iterable[dict[str, Any]] = ()) -> None:
        self.token = token
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.forbidden: set[str] = set()  # plurals answering 403, e.g. {"clusterrolebindings"}
        self.requests: list[tuple[str, str, bool]] = []
        self.url = ""
        self.ca_file: Path | None = None
        self._version = 1
        for obj in objects:
            self.add(obj)

    # --- state -----------------------------------------------------------------------------------------------

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store (or replace) an object, filling in what the API server would: uid, resourceVersion, and the
        ``kubernetes.io/metadata.name`` label of a namespace."""
        obj = copy.deepcopy(obj)
        kind = obj["kind"]
        group, _, namespaced = KINDS[kind]
        obj["apiVersion"] = group
        meta = obj.setdefault("metadata", {})
        namespace = meta.get("namespace") if namespaced else None
        if namespaced and not namespace:
            raise ValueError(f"{kind} {meta.get('name')} needs metadata.namespace")
        if kind == "Namespace":
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        self._version += 1
        meta.setdefault("uid", str(uuid.uuid4()))
        meta["resourceVersion"] = str(self._version)
        meta.setdefault("creationTimestamp", "2026-11-01T00:00:00Z")
        self.objects[(kind, namespace, meta["name"])] = obj
        return obj

    def remove(self, kind: str, name: str, namespace: str | None = None) -> None:
        del self.objects[(kind, namespace, name)]

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        return self.objects[(kind, namespace, name)]

    # --- HTTP ------------------------------------------------------------------------------------------------

    def answer(self, method: str, raw_path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for one request."""
        authorised = authorization == f"Bearer {self.token}"
        parts = urlsplit(raw_path)
        self.requests.append((method, raw_path, authorised))
        if not authorised:
            return 401, status(401, "Unauthorized", "Unauthorized")
        if method != "GET":
            return 405, status(405, "MethodNotAllowed", f"{method} is not supported by the test API")
        segments = [s for s in parts.path.split("/") if s]
        if segments[:2] == ["api", "v1"]:
            group, rest = "v1", segments[2:]
        elif len(segments) >= 3 and segments[0] == "apis":
            group, rest = f"{segments[1]}/{segments[2]}", segments[3:]
        else:
            return 404, status(404, "NotFound", f"the server could not find the requested resource ({parts.path})")
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 2 or (group, rest[0]) not in BY_PLURAL:
            return 404, status(404, "NotFound", f"the server could not find the requested resource ({parts.path})")
        kind, plural, name = BY_PLURAL[(group, rest[0])], rest[0], rest[1] if len(rest) == 2 else None
        if KINDS[kind][2] != (namespace is not None):
            return 404, status(404, "NotFound", f"{plural} is {'not ' if namespace else ''}namespaced")
        if plural in self.forbidden:
            scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
            return 403, status(403, "Forbidden", f'{plural}{" " + repr(name) if name else ""} is forbidden: User '
                                                 f'"system:serviceaccount:yunshu:collector" cannot '
                                                 f'{"get" if name else "list"} resource "{plural}" in API group '
                                                 f'"{group.rsplit("/", 1)[0] if "/" in group else ""}"{scope}')
        if name is not None:
            obj = self.objects.get((kind, namespace, name))
            if obj is None:
                return 404, status(404, "NotFound", f'{plural} "{name}" not found')
            return 200, obj
        selector = (parse_qs(parts.query).get("labelSelector") or [""])[0]
        items = [o for (k, ns, _), o in sorted(self.objects.items(), key=lambda kv: (kv[0][1] or "", kv[0][2]))
                 if k == kind and ns == namespace and _matches(o["metadata"].get("labels") or {}, selector)]
        return 200, {"apiVersion": group, "kind": f"{kind}List", "metadata": {"resourceVersion": str(self._version)},
                     "items": items}

    def kubeconfig(self, path: Path, token: str | None = None, server: str | None = None) -> Path:
        """Write a kubeconfig for this server (or ``server``) with ``token`` (default: the right one)."""
        cluster: dict[str, Any] = {"server": server or self.url}
        if self.ca_file is not None:
            cluster["certificate-authority"] = str(self.ca_file)
        config = {"apiVersion": "v1", "kind": "Config", "preferences": {},
                  "clusters": [{"name": "test", "cluster": cluster}],
                  "users": [{"name": "collector", "user": {"token": token or self.token}}],
                  "contexts": [{"name": "test", "context": {"cluster": "test", "user": "collector"}}],
                  "current-context": "test"}
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path


class _Handler(http.server.BaseHTTPRequestHandler):
    api: KubeApi

    def _reply(self) -> None:
        code, body = self.server.api.answer(self.command, self.path,  # type: ignore[attr-defined]
                                            self.headers.get("Authorization"))
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _reply

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def kube_api(token: str, objects: Iterable[dict[str, Any]] = (), *, tls_dir: Path | None = None) -> Iterator[KubeApi]:
    """Serve a :class:`KubeApi` on 127.0.0.1 (a free port) in a thread; HTTPS with a self-signed certificate (also
    the kubeconfig's certificate authority) when ``tls_dir`` is given."""
    api = KubeApi(token, objects)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.api = api  # type: ignore[attr-defined]
    scheme = "http"
    if tls_dir is not None:
        import ssl

        from core.crypto import ensure_self_signed_certificate

        cert, key = ensure_self_signed_certificate(tls_dir, ["127.0.0.1"])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        api.ca_file, scheme = cert, "https"
    api.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="kube-api", daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


# --- objects -------------------------------------------------------------------------------------------------


def objects_from_plan(planned: dict[str, Any]) -> list[dict[str, Any]]:
    """The Kubernetes objects of a Pulumi plan (``infra.cloud.plan.plan`` output): the planned resources' properties
    are the objects' manifests (apiVersion, kind, metadata, spec …)."""
    return [copy.deepcopy(r["properties"]) for r in planned["resources"]
            if r["custom"] and r["type"].startswith("kubernetes:") and r["properties"].get("kind") in KINDS]


def cluster_defaults() -> list[dict[str, Any]]:
    """What every cluster has: the user-facing ClusterRoles (rules abridged, no wildcards except cluster-admin)
    and the bootstrap ``cluster-admin`` binding of ``system:masters`` (labelled as an RBAC default)."""
    defaults = {"kubernetes.io/bootstrapping": "rbac-defaults"}

    def role(name: str, verbs: list[str], resources: list[str], groups: list[str]) -> dict[str, Any]:
        return {"kind": "ClusterRole", "metadata": {"name": name, "labels": defaults},
                "rules": [{"apiGroups": groups, "resources": resources, "verbs": verbs}]}

    workloads = ["pods", "services", "configmaps", "secrets", "deployments", "statefulsets", "jobs"]
    return [
        role("cluster-admin", ["*"], ["*"], ["*"]),
        role("admin", ["get", "list", "watch", "create", "update", "patch", "delete"],
             [*workloads, "rolebindings", "roles"], ["", "apps", "batch", RBAC]),
        role("edit", ["get", "list", "watch", "create", "update", "patch", "delete"], workloads,
             ["", "apps", "batch"]),
        role("view", ["get", "list", "watch"], [w for w in workloads if w != "secrets"], ["", "apps", "batch"]),
        {"kind": "ClusterRoleBinding", "metadata": {"name": "cluster-admin", "labels": defaults},
         "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "cluster-admin"},
         "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": "system:masters"}]},
    ]
