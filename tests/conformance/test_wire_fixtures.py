"""botocore reads the XML of the Query/EC2 protocol layer (crates/opsworks-api) as it must.

No server: each case replays the committed XML our writer produced (kept equal to the writer's
output by the Rust test `query::tests::botocore_fixtures`) through a real botocore client or
parser. See crates/opsworks-api/tests/botocore/check_xml.py.
"""

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "crates/opsworks-api/tests/botocore/check_xml.py"
_SPEC = importlib.util.spec_from_file_location("check_xml", _PATH)
check_xml = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(check_xml)

CASES = check_xml.cases()


def test_every_service_has_cases():
    services = {c["service"] for c in CASES}
    assert services == {"iam", "sts", "rds", "elb", "ec2", "wiretest-query", "wiretest-ec2"}
    assert len(CASES) >= 80


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_botocore_reads_our_xml(case):
    check_xml.check(case)
