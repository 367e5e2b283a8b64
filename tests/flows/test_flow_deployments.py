"""flows/prefect.yaml is loaded and validated by Prefect itself; its deployments apply to a real server."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PREFECT_YAML = REPO / "flows" / "prefect.yaml"


def _load() -> dict:
    return yaml.safe_load(PREFECT_YAML.read_text())


def test_prefect_yaml_passes_prefects_own_schema() -> None:
    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(_load())  # what `prefect deploy` validates the file with
    names = {d.name for d in model.deployments}
    assert {"caption-region", "caption-region-gpu", "build-dataset"} <= names
    pools = {d.work_pool.name for d in model.deployments if d.work_pool}
    assert pools == {"cpu-pool", "gpu-pool"}
    assert any(d.schedules for d in model.deployments), "the file shows a schedule example"


def test_every_deployment_loads_its_flow_and_its_parameters_validate() -> None:
    from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule
    from prefect.flows import load_flow_from_entrypoint

    for dep in _load()["deployments"]:
        flow = load_flow_from_entrypoint(str(REPO / dep["entrypoint"]), use_placeholder_flow=False)
        assert flow.name == dep["entrypoint"].rsplit(":", 1)[1]
        params = flow.validate_parameters(dep["parameters"])  # the flow's own pydantic parameter schema
        if "execution" in params:  # the pipeline flows; export/train take plain parameters
            assert params["execution"].task_runner in ("thread", "dask")
        for sched in dep.get("schedules") or []:
            assert _schedule_config_to_deployment_schedule(sched)["schedule"] is not None


def test_bad_parameters_fail_with_a_message_naming_the_input() -> None:
    from prefect.exceptions import ParameterTypeError
    from prefect.flows import load_flow_from_entrypoint

    flow = load_flow_from_entrypoint(str(REPO / "flows/caption.py:caption_region"),
                                     use_placeholder_flow=False)
    with pytest.raises(ParameterTypeError, match="exactly one of bbox"):
        flow.validate_parameters({"region": {"name": "x"}})
    with pytest.raises(ParameterTypeError, match="task_runner"):
        flow.validate_parameters({"region": {"name": "x", "bbox": [0, 0, 1, 1]},
                                  "execution": {"task_runner": "spark"}})


def test_deployments_apply_to_a_server_and_a_run_can_be_triggered(prefect_server: str) -> None:
    from prefect import get_client
    from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule
    from prefect.client.schemas.actions import DeploymentScheduleCreate, WorkPoolCreate
    from prefect.deployments import run_deployment
    from prefect.flows import load_flow_from_entrypoint

    doc = _load()
    with get_client(sync_client=True) as client:
        for pool in ("cpu-pool", "gpu-pool"):
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"), overwrite=True)
    for dep in doc["deployments"]:
        flow = load_flow_from_entrypoint(str(REPO / dep["entrypoint"]), use_placeholder_flow=False)
        schedules = [_schedule_config_to_deployment_schedule(s) for s in dep.get("schedules") or []]
        runner_dep = flow.to_deployment(
            name=dep["name"], parameters=dep["parameters"], tags=dep["tags"], description=dep["description"],
            work_pool_name=dep["work_pool"]["name"], job_variables=dep["work_pool"]["job_variables"],
            schedules=[DeploymentScheduleCreate(schedule=s["schedule"], active=s["active"])
                       for s in schedules])
        runner_dep.apply()
    with get_client(sync_client=True) as client:
        stored = client.read_deployment_by_name("caption_region/caption-region")
        assert stored.work_pool_name == "cpu-pool"
        assert stored.parameters["region"]["bbox"] == [11.33, 47.24, 11.45, 47.29]
        assert stored.parameter_openapi_schema["properties"]["region"], "the UI gets a parameter form"
        gpu = client.read_deployment_by_name("caption_region/caption-region-gpu")
        assert gpu.work_pool_name == "gpu-pool"
        build = client.read_deployment_by_name("build_dataset/build-dataset")
        assert build.parameters["execution"]["task_runner"] == "dask"
        assert build.schedules and not build.schedules[0].active
    # trigger a run (no worker polls this server, so it stays scheduled for the cpu-pool)
    fr = run_deployment("caption_region/caption-region", timeout=0,
                        parameters={"region": {"name": "tiny", "bbox": [11.3, 47.2, 11.31, 47.21]}})
    assert fr.state is not None and fr.state.is_scheduled()
    assert fr.parameters["region"]["name"] == "tiny"
