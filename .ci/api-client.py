"""A client generated from btar's OpenAPI document, used against a live `btar server`.

.ci/api-fuzz runs it after schemathesis: `openapi-python-client` turns /v1/openapi.json into a
Python package (`btar_client`, one module per operationId); this script calls it the way a user
would and fails when an answer does not parse into the generated models or says the wrong thing.
    python api-client.py BASE_URL TOKEN
"""
import sys

from btar_client import AuthenticatedClient, Client
from btar_client.api.backups import list_backups, replication_report
from btar_client.api.copy_jobs import list_copy_jobs
from btar_client.api.operations import healthz
from btar_client.api.services import create_service, delete_service, get_service, list_services
from btar_client.models import (
    BackupsView, CopyJobsPage, ErrorBody, LagReport, Period, Probe, ReportBody, ServiceBody,
    ServiceCreate, ServicesBody, UserConfig,
)

base, token = sys.argv[1:3]
api = AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)


def expect(value, model, what):
    if not isinstance(value, model):
        sys.exit(f"{what}: expected {model.__name__}, got {value!r}")
    return value


expect(healthz.sync(client=Client(base_url=base)), Probe, "healthz")
# A service of its own: the fuzzer before may have deleted or changed the configured one.
name = "from-client"
created = expect(
    create_service.sync("fuzz", client=api, body=ServiceCreate(
        service_name=name, cloud="fuzz-home",
        user_config=UserConfig(additional_backup_regions=["fuzz-away"]))),
    ServiceBody, "createService")
assert created.service.service_name == name, created
listed = expect(list_services.sync("fuzz", client=api), ServicesBody, "listServices")
assert name in [s.service_name for s in listed.services], listed
got = expect(get_service.sync("fuzz", name, client=api), ServiceBody, "getService")
assert got.service.cloud_name == "fuzz-home", got
assert got.service.user_config.additional_backup_regions == ["fuzz-away"], got
expect(list_backups.sync("fuzz", name, client=api), BackupsView, "listBackups")
report = expect(
    replication_report.sync("fuzz", name, client=api, body=ReportBody(period=Period.DAY)),
    LagReport, "replicationReport")
assert "fuzz-away" in report.metrics.additional_properties, report
page = expect(list_copy_jobs.sync(client=api, limit=5), CopyJobsPage, "listCopyJobs")
assert len(page.copy_jobs) <= 5, page
expect(delete_service.sync("fuzz", name, client=api), object, "deleteService")
missing = get_service.sync("fuzz", name, client=api)
expect(missing, ErrorBody, "getService of a deleted service")
assert missing.errors[0].status == 404 and missing.code == "not_found", missing
print(f"generated client: {len(listed.services)} services, {len(page.copy_jobs)} copy jobs, ok")
