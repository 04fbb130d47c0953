"""The broker's jars: Apache Kafka and Apicurio Registry, fetched through Maven into the cache
directory on the first start, so that later starts work offline."""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile

from ops.broker.nodes import APICURIO_VERSION, HERE, KAFKA_VERSION, BrokerError, Paths
from ops.broker.processes import Say


def require_tools() -> None:
    java = shutil.which("java")
    if not java:
        raise BrokerError(
            "Java 17 or newer is required to run the local broker: "
            "install it (Debian: apt-get install openjdk-17-jre-headless)"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    if not match or int(match.group(1)) < 17:
        raise BrokerError(
            f"Java 17 or newer is required, found: {out.splitlines()[0] if out else 'unknown'}; install openjdk-17"
        )
    if not shutil.which("mvn"):
        raise BrokerError(
            "Maven is required to fetch Kafka and Apicurio the first time: install it (Debian: apt-get install maven)"
        )


def _mvn(args: list[str], say: Say) -> None:
    cmd = ["mvn", "-B", "-q", *args]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise BrokerError(f"Maven failed ({' '.join(cmd)}):\n{tail}")


def ensure_artifacts(p: Paths, say: Say = print) -> None:
    """Fetch Kafka's jars and Apicurio's runner once; later calls find them in the cache."""
    if not any(p.kafka_libs.glob("kafka_2.13-*.jar")):
        require_tools()
        say(f"fetching Apache Kafka {KAFKA_VERSION} through Maven (first start only) ...")
        tmp = p.kafka_libs.with_name("libs.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        _mvn(
            [
                "-f",
                str(HERE / "pom.xml"),
                "dependency:copy-dependencies",
                f"-Dkafka.version={KAFKA_VERSION}",
                f"-DoutputDirectory={tmp}",
            ],
            say,
        )
        tmp.rename(p.kafka_libs)
    if not p.registry_jar.exists():
        require_tools()
        say(f"fetching Apicurio Registry {APICURIO_VERSION} through Maven (first start only) ...")
        download = p.cache / "downloads"
        artifact = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"
        _mvn(["dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={download}"], say)
        archive = download / f"apicurio-registry-app-{APICURIO_VERSION}-all.tar.gz"
        tmp = p.registry_dir.with_name(p.registry_dir.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        tmp.rename(p.registry_dir)
        archive.unlink(missing_ok=True)
