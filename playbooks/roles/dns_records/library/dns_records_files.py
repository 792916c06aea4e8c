#!/usr/bin/python
"""Write or remove records files (hosts-file format) in a DNS server's records directory, several in one call."""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: dns_records_files
short_description: Records files (one per host) in the records directory of a dnsmasq server
description:
  - Each file holds lines "ADDRESS NAME..." (dnsmasq --addn-hosts); only files whose content differs are written,
    atomically. With state=absent the named files are removed.
options:
  dir: {type: path, required: true, description: The records directory.}
  files: {type: dict, required: true, description: "File name -> list of records (address, names)."}
  state: {type: str, choices: [present, absent], default: present, description: Write or remove the files.}
  header: {type: str, default: "", description: Comment line written first in each file.}
author: Yunshu platform team
"""

RETURN = r"""
changed_files: {description: Files written or removed, type: list, returned: always}
"""


def render(records: list[dict], header: str) -> str:
    lines = [f"# {header}"] if header else []
    lines += [f"{r['address']} {' '.join(r['names'])}" for r in records]
    return "\n".join(lines) + "\n"


def main() -> None:
    module = AnsibleModule(
        argument_spec={"dir": {"type": "path", "required": True}, "files": {"type": "dict", "required": True},
                       "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
                       "header": {"type": "str", "default": ""}},
        supports_check_mode=True)
    directory, changed = module.params["dir"], []
    for name, records in sorted(module.params["files"].items()):
        if "/" in name or name.startswith("."):
            module.fail_json(msg=f"bad records file name {name!r}")
        path = os.path.join(directory, name)
        if module.params["state"] == "absent":
            if os.path.lexists(path):
                changed.append(path)
                if not module.check_mode:
                    os.unlink(path)
            continue
        content = render(records or [], module.params["header"])
        try:
            with open(path, encoding="utf-8") as handle:
                if handle.read() == content:
                    continue
        except OSError:
            pass
        changed.append(path)
        if not module.check_mode:
            os.makedirs(directory, mode=0o755, exist_ok=True)
            tmp = os.path.join(directory, f".{name}.tmp")
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(content)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
    module.exit_json(changed=bool(changed), changed_files=changed)


if __name__ == "__main__":
    main()
