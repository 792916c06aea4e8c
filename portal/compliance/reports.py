"""Signed 等保 reports: HTML (zh-CN first, printable), JSON and CSV in one directory with ``manifest.json`` (SHA-256
and size of every file), ``manifest.sig`` (Ed25519 detached signature of the manifest's exact bytes) and the
public key. :func:`verify_report` checks the signature and every digest and names what was tampered with.

The signing key is a dedicated one, ``$YUNSHU_HOME/keys/report_ed25519.pem`` (created on first use, mode 0600),
kept apart from the audit chain's key.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jinja2 import Environment, FileSystemLoader, select_autoescape

from core.crypto import load_or_create_signing_key
from policies.mlps.report import CSV_COLUMNS, DECIDED_ZH, KIND_ZH
from policies.mlps.results import Result

REPORT_KEY_NAME = "report_ed25519"
FORMAT = "yunshu-mlps-report/1"
HTML, JSON_FILE, CSV_FILE = "report.html", "report.json", "report.csv"
MANIFEST, SIGNATURE, PUBLIC_KEY = "manifest.json", "manifest.sig", "report_signing.pub"
UI_ZONE = ZoneInfo("Asia/Shanghai")
RESULT_ORDER = [r.value for r in Result]

_env = Environment(loader=FileSystemLoader(str(Path(__file__).with_name("templates"))),
                   autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


def load_or_create_report_key(keys_dir: Path) -> Ed25519PrivateKey:
    """The report-signing key under ``keys_dir`` (created with its ``.pub`` on first use), apart from the audit key."""
    return load_or_create_signing_key(keys_dir, REPORT_KEY_NAME)


def _public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key (hex)."""
    return hashlib.sha256(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).hexdigest()


def _local(text: str | None) -> str:
    if not text:
        return "—"
    try:
        return datetime.fromisoformat(text).astimezone(UI_ZONE).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return text


def render_html(data: dict[str, Any]) -> str:
    """The printable HTML report (self-contained: styles inline, no scripts)."""
    failed = [r for r in data.get("requirements", []) if r["result"] in ("不符合", "部分符合")]
    return _env.get_template("compliance_report.html").render(
        d=data, failed=failed, local=_local, results=RESULT_ORDER, kind_zh=KIND_ZH, decided_zh=DECIDED_ZH)


def render_csv(data: dict[str, Any]) -> str:
    """The requirement table (bilingual headers, UTF-8 with BOM) from report data, plus the remediation."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([h for _, h in CSV_COLUMNS] + ["整改建议", "Remediation"])
    for r in data.get("requirements", []):
        failing = [c for c in r["checks"] if c["result"] != "不适用"] or r["checks"]
        answer = r.get("answer") or {}
        fix = r.get("remediation") or {}
        row = {
            "unit": r["unit"], "clause": r["clause"], "family": r["family_zh"], "control_point": r["control_point"],
            "requirement_zh": r["requirement_zh"], "requirement_en": r["requirement_en"],
            "kind": f"{KIND_ZH[r['kind']]} / {r['kind']}", "result": r["result"], "result_en": r["result_en"],
            "decided_by": f"{DECIDED_ZH[r['decided_by']]} / {r['decided_by']}",
            "reasons_zh": "；".join(f"{c['check']}: {c['reason_zh']}" for c in failing),
            "reasons_en": "; ".join(f"{c['check']}: {c['reason_en']}" for c in failing),
            "auditor": answer.get("auditor", ""), "answered_at": answer.get("answered_at", ""),
            "note": answer.get("note", ""), "high_risk_cases": " ".join(f["case"] for f in r["high_risk"]),
        }
        writer.writerow([row[k] for k, _ in CSV_COLUMNS] + [fix.get("zh", ""), fix.get("en", "")])
    if not data.get("requirements"):
        writer.writerow([data["system"]["id"], "", "", "", data.get("unsupported", {}).get("zh", ""),
                         data.get("unsupported", {}).get("en", "")] + [""] * (len(CSV_COLUMNS) - 4))
    return "\ufeff" + buffer.getvalue()


def unsupported_report(system: dict[str, Any], message: str, generated_at: datetime | None = None) -> dict[str, Any]:
    """Report data for a system the catalog does not cover (level 1 or 4): it says so and evaluates nothing."""
    en, _, zh = message.partition(" / ")
    return {
        "report": {"title_zh": "网络安全等级保护测评结果", "title_en": "Classified-protection (MLPS 2.0) evaluation",
                   "generated_at": (generated_at or datetime.now(UTC)).isoformat(),
                   "standard": "GB/T 22239-2019 / GB/T 28448-2019"},
        "system": system, "unsupported": {"zh": zh, "en": en}, "conclusion": None, "rate_percent": None,
        "items": 0, "counts": {}, "families": [], "high_risks": [], "major_hazards": [], "requirements": [],
        "evidence": {},
    }


def write_report(out_dir: Path, data: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """Write HTML, JSON, CSV, the manifest, its detached signature and the public key; returns the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = [p.name for p in out_dir.iterdir()]
    if existing:
        raise FileExistsError(f"{out_dir} is not empty ({', '.join(sorted(existing)[:5])}): give a new directory")
    files = {HTML: render_html(data).encode("utf-8"),
             JSON_FILE: json.dumps(data, ensure_ascii=False, indent=2, default=str).encode("utf-8"),
             CSV_FILE: render_csv(data).encode("utf-8"),
             PUBLIC_KEY: _public_pem(key.public_key())}
    for name, body in files.items():
        (out_dir / name).write_bytes(body)
    manifest = {
        "format": FORMAT,
        "system": data["system"]["id"],
        "evaluation_id": data["report"].get("evaluation_id"),
        "generated_at": data["report"]["generated_at"],
        "algorithm": "sha256",
        "files": {name: {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}
                  for name, body in sorted(files.items())},
        "public_key_sha256": key_fingerprint(key.public_key()),
    }
    manifest_bytes = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
    (out_dir / MANIFEST).write_bytes(manifest_bytes)
    signature = {"algorithm": "Ed25519", "signed_file": MANIFEST,
                 "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
                 "public_key_sha256": manifest["public_key_sha256"],
                 "signature": base64.b64encode(key.sign(manifest_bytes)).decode("ascii")}
    (out_dir / SIGNATURE).write_text(json.dumps(signature, indent=2) + "\n", encoding="utf-8")
    return manifest


@dataclass
class Verification:
    """Outcome of :func:`verify_report`: ``ok`` and, per file, what is wrong."""

    directory: str
    problems: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    key_sha256: str | None = None
    system: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"directory": self.directory, "valid": self.ok, "system": self.system,
                "public_key_sha256": self.key_sha256,
                "problems": [{"file": f, "reason": r} for f, r in self.problems]}


def _load_public(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path.name} is not an Ed25519 public key")
    return key


def verify_report(directory: Path | str, trusted_key: Ed25519PublicKey | None = None) -> Verification:
    """Check the manifest's signature and every file's SHA-256; name every file that does not match.

    ``trusted_key`` (e.g. the instance's report key) must be the key that signed; without it the bundled public key
    is used and its fingerprint is reported for the reader to compare."""
    root = Path(directory)
    out = Verification(str(root))
    if not root.is_dir():
        out.problems.append((str(root), "not a directory / 目录不存在"))
        return out
    try:
        manifest_bytes = (root / MANIFEST).read_bytes()
        manifest = json.loads(manifest_bytes)
        files = manifest["files"]
        out.system = manifest.get("system")
    except FileNotFoundError:
        out.problems.append((MANIFEST, "missing / 缺失"))
        return out
    except (ValueError, KeyError, TypeError) as exc:
        out.problems.append((MANIFEST, f"unreadable, modified after signing / 清单无法解析（已被篡改）: {exc}"))
        return out
    try:
        key = trusted_key or _load_public(root / PUBLIC_KEY)
    except (FileNotFoundError, ValueError) as exc:
        out.problems.append((PUBLIC_KEY, f"public key unusable / 公钥不可用: {exc}"))
        return out
    out.key_sha256 = key_fingerprint(key)
    try:
        sig = json.loads((root / SIGNATURE).read_text(encoding="utf-8"))
        raw = base64.b64decode(sig["signature"], validate=True)
        claimed = sig["manifest_sha256"]
        if sig.get("algorithm") != "Ed25519" or sig.get("signed_file") != MANIFEST:
            raise ValueError(f"algorithm {sig.get('algorithm')!r} / signed_file {sig.get('signed_file')!r} are not "
                             f"'Ed25519' / {MANIFEST!r}")
    except FileNotFoundError:
        out.problems.append((SIGNATURE, "missing / 缺失"))
        return out
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        out.problems.append((SIGNATURE, f"unreadable, modified / 签名文件无法解析（已被篡改）: {exc}"))
        return out
    try:
        key.verify(raw, manifest_bytes)
    except InvalidSignature:
        if hashlib.sha256(manifest_bytes).hexdigest() != claimed:
            out.problems.append((MANIFEST, "modified after signing: the signature does not cover it / "
                                           "清单签名后被修改"))
        else:
            out.problems.append((SIGNATURE, "signature invalid for this manifest and key / 签名无效"))
        return out
    if trusted_key is None and manifest.get("public_key_sha256") != out.key_sha256:
        out.problems.append((PUBLIC_KEY, "not the key the manifest names / 公钥与清单不符"))
    for name, entry in sorted(files.items()):
        path = root / name
        if name == PUBLIC_KEY and trusted_key is not None and not path.exists():
            continue
        if not path.is_file():
            out.problems.append((name, "missing / 缺失"))
            continue
        body = path.read_bytes()
        if hashlib.sha256(body).hexdigest() != entry.get("sha256") or len(body) != entry.get("bytes"):
            out.problems.append((name, "SHA-256 differs from the signed manifest: modified / 摘要不符，文件已被篡改"))
    unlisted = sorted(p.name for p in root.iterdir() if p.name not in files and p.name not in (MANIFEST, SIGNATURE))
    for name in unlisted:
        out.problems.append((name, "not in the signed manifest / 未列入签名清单"))
    return out
