"""``make package STAGE=...``: everything a deploy needs, in build/<stage>/, without touching AWS.

- ``deployment.zip``: app.py, chalicelib/ and the runtime requirements only (no Chalice CLI
  dependencies, pip, setuptools, test tools), with bytecode compiled in (unchecked-hash .pyc:
  Lambda's file system is read-only and zip timestamps are not the sources').
- ``sam.json``: Chalice's SAM template merged with ``infra/stack.py`` (what cfn-lint checks).
- ``template.json``: the same translated to plain CloudFormation by aws-sam-translator: what
  ``make deploy`` uploads and creates byte for byte, and what the tests create in moto's
  CloudFormation.

Both are written compact (``python -m json.tool`` reads them): CloudFormation takes a template
of at most 1 MB from S3, and the API's definition repeats seven operations per path (every
method answers, api/fallback.py), so indentation alone made up 40% of the template (docs/deploy.md,
"Template size").
"""
from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterable

from infra import policy, stack

ROOT = Path(__file__).resolve().parent.parent
# Installed by Chalice's packager for its CLI, or by pip itself: never imported at run time.
EXCLUDED_TOP_LEVEL = {
    "pip", "setuptools", "wheel", "pkg_resources", "_distutils_hack", "distutils-precedence.pth",
    "click", "inquirer", "blessed", "jinxed", "readchar", "editor", "runs", "xmod", "wcwidth", "yaml", "_yaml",
    "pytest", "_pytest", "moto", "pluggy", "iniconfig",
}
EXCLUDED_REQUIREMENTS = {"chalice"}  # Chalice adds its runtime (chalice/app.py) itself
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# CloudFormation's quotas the packaged stage must fit (docs/deploy.md, "Template size"): a
# template read from S3 ("1 MB": the smaller reading, cfn-lint's too), resources per stack.
# API Gateway's resources (path segments) per REST API is checked by tests/deploy.
TEMPLATE_S3_MAX_BYTES = 1_000_000
TEMPLATE_INLINE_MAX_BYTES = 51_200
STACK_MAX_RESOURCES = 500


def chalice_config(stage: str) -> Dict[str, Any]:
    """The stage's .chalice/config.json, generated: any stage name works, and roles and names
    come from the stack (infra/stack.py), not from a second copy here."""
    return {
        "version": "2.0",
        "app_name": "spikes",
        "stages": {stage: {
            "api_gateway_stage": stack.API_STAGE,
            "api_gateway_endpoint_type": "REGIONAL",
            "lambda_memory_size": stack.MEMORY_MB,
            "lambda_timeout": stack.API_TIMEOUT_SECONDS,
            "manage_iam_role": False,
            "iam_role_arn": "replaced-by-infra-stack",
            "environment_variables": {"SPIKES_STAGE": stage},
            "lambda_functions": {function: {"lambda_timeout": timeout}
                                 for function, timeout in stack.SCHEDULED_TIMEOUT_SECONDS.items()},
        }},
    }


def runtime_requirements() -> str:
    lines = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name = re.split(r"[=<>~!\[ ;#]", line.strip(), maxsplit=1)[0].lower()
        if name and name not in EXCLUDED_REQUIREMENTS:
            lines.append(line)
    return "\n".join(lines) + "\n"


def prepare_project(stage: str, project: Path) -> None:
    """A copy of what ships (app.py, chalicelib/) with the generated config. Chalice's cache of
    built dependencies (.chalice/deployments/) is kept between runs."""
    project.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(project / "chalicelib", ignore_errors=True)
    shutil.copytree(ROOT / "chalicelib", project / "chalicelib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(ROOT / "app.py", project / "app.py")
    (project / "requirements.txt").write_text(runtime_requirements())
    (project / ".chalice").mkdir(exist_ok=True)
    (project / ".chalice" / "config.json").write_text(json.dumps(chalice_config(stage), indent=2))


def run_chalice_package(stage: str, project: Path, out: Path) -> None:
    chalice = Path(sys.executable).with_name("chalice")
    env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"}
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([str(chalice), "package", "--stage", stage, "--pkg-format", "cloudformation", str(out)],
                   cwd=project, env=env, check=True, stdout=subprocess.DEVNULL)


def _excluded(relative: Path) -> bool:
    top = relative.parts[0]
    name = top.split("-")[0] if top.endswith((".dist-info", ".egg-info")) else top
    return name in EXCLUDED_TOP_LEVEL or "__pycache__" in relative.parts or relative.suffix == ".pyc"


def slim_package(chalice_zip: Path, target: Path) -> None:
    """Rewrite Chalice's zip: drop what never runs, add compiled bytecode, fixed timestamps."""
    with tempfile.TemporaryDirectory() as tmp:
        unpacked = Path(tmp)
        with zipfile.ZipFile(chalice_zip) as source:
            source.extractall(unpacked)
        for path in sorted(unpacked.iterdir()):
            if _excluded(path.relative_to(unpacked)):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        compileall.compile_dir(str(unpacked), quiet=1, workers=1, ddir=".",
                               invalidation_mode=compileall.py_compile.PycInvalidationMode.UNCHECKED_HASH)
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as package:
            for path in sorted(_files(unpacked)):
                info = zipfile.ZipInfo(str(path.relative_to(unpacked)), FIXED_ZIP_TIME)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                package.writestr(info, path.read_bytes())


def _files(folder: Path) -> Iterable[Path]:
    return (path for path in folder.rglob("*") if path.is_file())


class _NoManagedPolicies:
    """The translator asks for AWS managed policies only for SAM `Policies`: we use roles."""

    def load(self) -> Dict[str, str]:
        return {}


def translate(sam_template: Dict[str, Any]) -> Dict[str, Any]:
    """SAM -> CloudFormation. The result names no region (the translator insists on knowing
    one all the same)."""
    from samtranslator.translator.transform import transform
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return transform(sam_template, {}, _NoManagedPolicies())


def build(stage: str, build_root: Path) -> Dict[str, Any]:
    stack.check_stage(stage)
    out = build_root / stage
    project = build_root / ".projects" / stage
    prepare_project(stage, project)
    raw = project / ".chalice-package"
    run_chalice_package(stage, project, raw)
    out.mkdir(parents=True, exist_ok=True)
    slim_package(raw / "deployment.zip", out / "deployment.zip")
    sam = stack.merge_into(json.loads((raw / "sam.json").read_text()), stage)
    write_template(out / "sam.json", sam)
    template = translate(sam)
    write_template(out / "template.json", template)
    shutil.rmtree(raw, ignore_errors=True)
    return describe(out)


def write_template(path: Path, template: Dict[str, Any]) -> None:
    path.write_text(json.dumps(template, separators=(",", ":"), sort_keys=True))


def describe(out: Path) -> Dict[str, Any]:
    package = out / "deployment.zip"
    with zipfile.ZipFile(package) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
        files = len(archive.infolist())
    return {"dir": str(out), "package_bytes": package.stat().st_size, "unpacked_bytes": unpacked, "files": files,
            "package_sha256": hashlib.sha256(package.read_bytes()).hexdigest(),
            "template_bytes": (out / "template.json").stat().st_size,
            "template_resources": len(json.loads((out / "template.json").read_text())["Resources"])}


# CPU time (process_time), not wall time: on a shared machine waiting for a core is not the
# import's cost. The first request is a health check after `import app`.
COLD_IMPORT = "import time; started = time.process_time(); import {modules}; print(time.process_time() - started)"
COLD_FIRST_REQUEST = """
import time
import app
event = {"resource": "/health", "path": "/health", "httpMethod": "GET", "headers": {}, "multiValueHeaders": {},
         "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
         "stageVariables": None, "body": None, "isBase64Encoded": False,
         "requestContext": {"resourcePath": "/health", "httpMethod": "GET", "path": "/api/health", "stage": "api",
                            "domainName": "cold.execute-api.us-east-1.amazonaws.com", "identity": {"sourceIp": "192.0.2.1"}}}
class Context:
    function_name, aws_request_id, memory_limit_in_mb = "cold", "cold", 512
    def get_remaining_time_in_millis(self):
        return 25000
started = time.process_time()
assert app.app(event, Context())["statusCode"] == 200
print(time.process_time() - started)
"""


def cold_import_seconds(package: Path, runs: int = 5) -> Dict[str, float]:
    """Best of ``runs`` fresh interpreters from the unzipped package: ``import app``, a bare
    ``import chalice, boto3`` (the budget's baseline), and the first request after the import
    (``first_request``: what every route loads on first use, chalicelib/lazy.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(package) as archive:
            archive.extractall(tmp)
        env = {"PATH": os.environ.get("PATH", ""), "SPIKES_STAGE": "prod", "PYTHONDONTWRITEBYTECODE": "1",
               "SPIKES_SECRET_KEY": "cold-start-measurement-only", "SPIKES_LOG_LEVEL": "WARNING",
               "AWS_DEFAULT_REGION": "us-east-1"}
        scripts = {"app": COLD_IMPORT.format(modules="app"),
                   "chalice, boto3": COLD_IMPORT.format(modules="chalice, boto3"),
                   "first_request": COLD_FIRST_REQUEST}
        best = {name: float("inf") for name in scripts}
        for _ in range(runs):
            for name, script in scripts.items():
                result = subprocess.run([sys.executable, "-S", "-E", "-c", script],
                                        cwd=tmp, env=env, capture_output=True, text=True, check=True)
                best[name] = min(best[name], float(result.stdout.strip().splitlines()[-1]))
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="prod", type=stack.stage_argument)
    parser.add_argument("--build-dir", default=str(ROOT / "build"))
    args = parser.parse_args(argv)
    info = build(args.stage, Path(args.build_dir))
    print(f"Packaged stage {args.stage} in {info['dir']}/")
    print(f"  deployment.zip  {info['package_bytes'] / 1e6:.1f} MB ({info['unpacked_bytes'] / 1e6:.1f} MB unpacked, "
          f"{info['files']} files)")
    print(f"  template.json   {info['template_bytes'] / 1e3:.0f} kB of CloudFormation's "
          f"{TEMPLATE_S3_MAX_BYTES / 1e6:.0f} MB from S3 (over the {TEMPLATE_INLINE_MAX_BYTES:,}-byte inline limit: "
          f"make deploy uploads it), {info['template_resources']} resources of {STACK_MAX_RESOURCES}")
    print(f"  functions       {', '.join(policy.function_name(args.stage, f) for f in policy.FUNCTIONS)}")
    cold = cold_import_seconds(Path(info["dir"]) / "deployment.zip")
    print(f"  cold import     app {cold['app'] * 1000:.0f} ms, bare chalice+boto3 {cold['chalice, boto3'] * 1000:.0f} ms "
          f"(ratio {cold['app'] / cold['chalice, boto3']:.2f}, budget 1.5); then the first request (GET /health) "
          f"{cold['first_request'] * 1000:.0f} ms (CPU time, best of 5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
