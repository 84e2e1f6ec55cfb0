"""Which stacks a deployment serves, as the Prefect server keeps it: one deployment per flow serves many stacks.

`incarnate serve` makes one deployment of each flow for the stacks it runs on one engine (deployments/serve.py); the
stack is chosen by the run's `repo` parameter. That parameter's schema lists the registered repos (`enum`: the UI
shows them as a list to choose from, and the server refuses a run for any other repo) and maps each stack to its
repo (STACKS), so `incarnate trigger backup/acme`, the removal of a stack and the pool's worker find a stack's
deployment without this machine's registry.
"""

import copy

from prefect.client.schemas.actions import DeploymentUpdate
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags, FlowFilter, FlowFilterName
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL

from incarnate.errors import ConfigError

TAG = "incarnate"  # on every deployment `serve` makes; their runs carry it, so the alert triggers match only ours
STACKS = "x-incarnate-stacks"  # in the repo parameter's schema: {stack: repo}


def repo_schema(schema: dict) -> dict:
    """The `repo` property of a deployment's parameter schema (empty when it has none)."""
    return ((schema or {}).get("properties") or {}).get("repo") or {}


def stacks_of(deployment) -> dict[str, str]:
    """The stacks a deployment serves, each with its repo; empty for one that is not per flow."""
    return dict(repo_schema(deployment.parameter_openapi_schema).get(STACKS) or {})


def serve_only(schema: dict, stacks: dict[str, str]) -> dict:
    """The parameter schema with `repo` limited to these stacks' repos (sorted: the UI lists them in that order)."""
    chosen, schema = dict(sorted(stacks.items())), copy.deepcopy(schema)
    schema["properties"]["repo"] = {**repo_schema(schema), "enum": sorted(chosen.values()), STACKS: chosen}
    return schema


PAGE = 200  # the server's default limit: more than that comes in pages


def read_pages(read, **filters) -> list:
    """Everything a paged read of the server (read_deployments, read_artifacts, ...) finds, page by page."""
    found: list = []
    while page := read(**filters, limit=PAGE, offset=len(found)):
        found.extend(page)
        if len(page) < PAGE:
            break
    return found


def read_all_deployments(client, **filters) -> list:
    """Every deployment the filters match."""
    return read_pages(client.read_deployments, **filters)


def incarnate_deployments(client, flow: str | None = None) -> list:
    """Every deployment `serve` made (of one flow, when named)."""
    return read_all_deployments(
        client,
        deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[TAG])),
        **({"flow_filter": FlowFilter(name=FlowFilterName(any_=[flow]))} if flow else {}),
    )


def resolve(client, name: str, params: dict[str, object] | None = None) -> tuple[object, dict[str, object]]:
    """The deployment `FLOW/NAME` stands for and the run's parameters: NAME is a deployment, or a stack one of the
    flow's deployments serves (its repo is then filled in). ConfigError naming what is missing."""
    params = dict(params or {})
    flow, _, last = name.partition("/")
    if not flow or not last or "/" in last:
        raise ConfigError(f"deployment {name!r}: expected FLOW/DEPLOYMENT or FLOW/STACK, e.g. backup/demo.")
    try:
        found = [client.read_deployment_by_name(name)]
    except ObjectNotFound:
        found = [made for made in incarnate_deployments(client, flow) if last in stacks_of(made)]
    if not found:
        raise ConfigError(
            f"deployment {name} does not exist on {PREFECT_API_URL.value()}, and no deployment of flow {flow} serves "
            f"a stack {last}; known: {', '.join(deployment_names(client)) or 'none'}."
        )
    if len(found) > 1:
        raise ConfigError(
            f"stack {last} is served by {len(found)} deployments of flow {flow} (two serving machines register it); "
            f"name the deployment (FLOW/DEPLOYMENT) and give --param repo=REPO."
        )
    (deployment,) = found
    stacks = stacks_of(deployment)
    if stacks and "repo" not in params:
        if last not in stacks:
            raise ConfigError(
                f"deployment {name} serves {len(stacks)} stack(s): name one ({flow}/STACK) or give --param repo=REPO."
            )
        params["repo"] = stacks[last]
    elif stacks and params["repo"] not in stacks.values():
        raise ConfigError(f"repo {params['repo']!r} is not one of the stacks deployment {name} serves.")
    return deployment, params


def forget_stack(client, stack: str) -> list[str]:
    """The stack leaves every deployment that serves it: its schedules and its repo go; a deployment left serving
    nothing goes. What went, for the removal's report."""
    gone = []
    for deployment in incarnate_deployments(client):
        stacks = stacks_of(deployment)
        if stack not in stacks and f"stack:{stack}" not in deployment.tags:  # the tag: deployments made per stack
            continue
        rest = {other: repo for other, repo in stacks.items() if other != stack}
        if not rest:
            client.delete_deployment(deployment.id)
            gone.append(f"deployment {deployment.name}")
            continue
        for schedule in deployment.schedules:
            if schedule.slug == stack:
                client.delete_deployment_schedule(deployment.id, schedule.id)
        client.update_deployment(
            deployment.id,
            DeploymentUpdate(parameter_openapi_schema=serve_only(deployment.parameter_openapi_schema, rest)),
        )
        gone.append(f"its schedules and choice in deployment {deployment.name}")
    return gone


def deployment_names(client) -> list[str]:
    flows = {flow.id: flow.name for flow in client.read_flows()}
    return sorted(
        f"{flows.get(deployment.flow_id, '?')}/{deployment.name}" for deployment in read_all_deployments(client)
    )
