#!/usr/bin/env python3
"""Package.swift declares exactly what each target imports.

SwiftPM's --explicit-target-dependency-import-check refuses an import only when the module is
outside the target's transitive dependencies; this check is stricter: every module of this
package or of a dependency that a target imports is declared by that target, and every
dependency a target declares is imported somewhere in it. Run from the repository root;
prints each mismatch and exits 1 when there is one.
"""
import json
import pathlib
import re
import subprocess
import sys

# Modules a product brings besides the one named like it.
PRODUCT_MODULES = {"Metrics": {"Metrics", "CoreMetrics"}}
# The toolchain's own modules, never declared.
SYSTEM = {"Glibc", "Musl", "Foundation", "FoundationEssentials", "Dispatch", "Synchronization", "Testing",
          "XCTest", "_Concurrency", "Swift"}
IMPORT = re.compile(r"^\s*(?:@\w+(?:\([^)]*\))?\s+)*(?:public |internal |package |private |fileprivate )?"
                    r"import (?:(?:struct|class|enum|protocol|func|var|let|typealias) )?([A-Za-z_][A-Za-z0-9_]*)",
                    re.M)

manifest = json.loads(subprocess.run(["swift", "package", "dump-package"], capture_output=True, text=True,
                                     check=True).stdout)
targets = {t["name"]: t for t in manifest["targets"]}
known = set(targets)
for t in manifest["targets"]:
    for d in t.get("dependencies", []):
        if "product" in d:
            known |= PRODUCT_MODULES.get(d["product"][0], {d["product"][0]})

problems = []
for name, t in sorted(targets.items()):
    if t["type"] == "system":
        continue
    path = pathlib.Path(t.get("path") or ("Tests/" if t["type"] == "test" else "Sources/") + name)
    imported = set()
    for f in path.rglob("*.swift"):
        imported |= set(IMPORT.findall(f.read_text()))
    declared = {}
    for d in t.get("dependencies", []):
        if "byName" in d:
            declared[d["byName"][0]] = {d["byName"][0]}
        elif "target" in d:
            declared[d["target"][0]] = {d["target"][0]}
        elif "product" in d:
            declared[d["product"][0]] = PRODUCT_MODULES.get(d["product"][0], {d["product"][0]})
    provided = set().union(*declared.values()) if declared else set()
    for module in sorted(imported - provided - SYSTEM):
        if module in known:
            problems.append(f"{name}: imports {module} but does not declare it")
    for dep, modules in sorted(declared.items()):
        if not modules & imported:
            problems.append(f"{name}: declares {dep} but imports none of {sorted(modules)}")

for p in problems:
    print(p)
if problems:
    print(f"Package.swift: {len(problems)} mismatch(es) between imports and declared dependencies")
    sys.exit(1)
print("Package.swift declares exactly what each target imports")
