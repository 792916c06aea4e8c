"""Cryptography checks: TLS on the system's endpoints, commercial cryptography (SM2/SM3/SM4) per the scheme."""

from __future__ import annotations

from policies.mlps.checks import CheckContext, check, failing_share, missing, names, not_applicable, result
from policies.mlps.evidence import Evidence
from policies.mlps.results import CheckResult, Result

SM_REQUIRED = {"SM3", "SM4"}  # integrity / confidentiality algorithms a scheme asks for at least


@check("crypto.tls_in_transit", "传输使用 TLS 1.2 及以上", "TLS 1.2+ in transit, no clear text", "crypto")
def tls_in_transit(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "crypto.tls_in_transit"
    if ev.crypto is None or not ev.crypto.endpoints:
        return missing(cid, "TLS 探测结果", "TLS probe results")
    allowed = set(ctx.params.tls.allowed)
    bad = {}
    for ep in ev.crypto.endpoints:
        weak = sorted(set(ep.protocols) - allowed)
        if ep.plaintext or weak or not ep.protocols:
            bad[ep.name] = {"weak": weak, "plaintext": ep.plaintext}
    n = len(ev.crypto.endpoints)
    if not bad:
        return result(
            cid,
            Result.COMPLIANT,
            f"{n} 个端点仅启用 {', '.join(sorted(allowed))}",
            f"all {n} endpoints use only allowed TLS versions",
        )
    value = failing_share(len(bad), n)
    return result(
        cid,
        value,
        f"{len(bad)}/{n} 个端点存在明文或弱协议：{names(bad)}",
        f"{len(bad)}/{n} endpoints allow clear text or weak TLS: {names(bad)}",
        endpoints=bad,
    )


@check("crypto.commercial_crypto", "使用合规商用密码", "Certified commercial cryptography", "crypto")
def commercial_crypto(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "crypto.commercial_crypto"
    c = ev.crypto
    if c is None:
        return missing(cid, "密码应用情况", "cryptography use")
    if c.scheme_requires_sm:
        lacking = sorted(SM_REQUIRED - {a.upper() for a in c.sm_algorithms_in_use})
        if lacking:
            return result(
                cid,
                Result.NON_COMPLIANT,
                f"密码应用方案要求但未使用：{', '.join(lacking)}",
                f"required by the scheme but unused: {', '.join(lacking)}",
                in_use=c.sm_algorithms_in_use,
            )
    if c.certified_products is None:
        return missing(cid, "密码产品认证情况", "product certification")
    if not c.certified_products:
        return result(
            cid, Result.NON_COMPLIANT, "使用的密码产品未获商用密码认证", "cryptographic products lack certification"
        )
    return result(
        cid,
        Result.COMPLIANT,
        "密码算法与产品符合要求" + (f"（{', '.join(c.sm_algorithms_in_use)}）" if c.sm_algorithms_in_use else ""),
        "algorithms and products meet the requirements",
        in_use=c.sm_algorithms_in_use,
    )


@check("crypto.application_scheme", "密码应用方案已备案", "Cryptography application scheme on file", "crypto")
def application_scheme(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "crypto.application_scheme"
    if ctx.level < 3:
        return not_applicable(cid, "第三级以下不要求密码应用方案", "no scheme required below level 3")
    if ev.crypto is None:
        return missing(cid, "密码应用方案", "the cryptography application scheme")
    if ev.crypto.scheme_on_file:
        return result(cid, Result.COMPLIANT, "密码应用方案已随工单提交", "scheme filed with the ticket")
    return result(cid, Result.NON_COMPLIANT, "无密码应用方案", "no cryptography application scheme on file")
