"""The administration pages (supervisors only): queues, agents, the routing policy and the
classification rules (the router's), SLA policies and calendars (SLA's), canned responses (the
router's), webhooks and key accounts (feedback's).

Every form posts to the console, which calls the API in the supervisor's name: on success it
redirects back (303); on the API's 422 it shows the page again with the person's input kept and
each error beside the field, step or rule it names. The APIs decide what is valid: the console
only turns fields into documents (and says so when it cannot, e.g. a JSON syntax error)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from console.api.deps import (
    NotAllowed,
    SignedIn,
    csrf_checked,
    parts_of,
    render,
    supervisor_signed_in,
)
from console.api.supervisor import answer_json
from console.apis import Service, UpstreamUnavailable
from console.domain.admin_forms import (
    FieldErrors,
    FormError,
    field_errors,
    line_of_item,
    parse_json_document,
    pretty,
    skill_levels,
    skills_text,
    whole_number,
    words,
)

router = APIRouter(include_in_schema=False, prefix="/admin")

STRATEGIES = ("longest_idle", "least_loaded", "round_robin", "best_skill_match")
CHANNELS = ("phone", "chat", "email", "social")
ROLES = ("agent", "supervisor")
# The router's id rule (queues, agents): checked here too, as the id goes into the API's path.
_ROUTER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_SLA_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
# Fields of an SLA view that are not part of the document a PUT takes.
_SLA_VIEW_ONLY = frozenset(
    {"version", "active", "created_at", "recomputed_open_tickets", "revision", "updated_at"}
)
SECTIONS = (
    "queues",
    "agents",
    "routing-policy",
    "classification-rules",
    "sla-policies",
    "calendars",
    "canned-responses",
    "webhooks",
    "key-accounts",
)


async def supervisor_csrf_checked(
    who: SignedIn = Depends(csrf_checked), _: SignedIn = Depends(supervisor_signed_in)
) -> SignedIn:
    """A supervisor's state-changing request with the session's CSRF token (an agent's is a
    403 whatever its token)."""
    return who


Supervisor = Depends(supervisor_signed_in)
SupervisorChange = Depends(supervisor_csrf_checked)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"}


async def _call(
    request: Request,
    who: SignedIn,
    service: Service,
    method: str,
    path: str,
    json: Any = None,
    params: dict[str, Any] | None = None,
) -> httpx.Response:
    response = await parts_of(request).apis.request(
        who.user, service, method, path, json=json, params=params
    )
    if response.status_code in (401, 403):
        raise NotAllowed
    if response.status_code >= 500:
        raise UpstreamUnavailable(f"{service}: {response.status_code}")
    return response


async def _get(request: Request, who: SignedIn, service: Service, path: str) -> Any:
    return answer_json(await _call(request, who, service, "GET", path))


def _problem(response: httpx.Response) -> dict[str, Any]:
    """The API's problem body (a 4xx the console shows): its `errors` name the fields."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    body.setdefault("detail", f"{response.status_code}")
    return body


def _back(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def _page(
    request: Request,
    who: SignedIn,
    template: str,
    *,
    errors: FieldErrors | None = None,
    **context: Any,
) -> Response:
    errors = errors or FieldErrors()
    return render(
        request,
        template,
        who,
        status_code=422 if errors else 200,
        errors=errors,
        sections=SECTIONS,
        saved=request.query_params.get("saved"),
        **context,
    )


@router.get("", summary="Supervisors: the administration pages' index")
async def admin_index(request: Request, who: SignedIn = Supervisor) -> Response:
    return _page(request, who, "admin/index.html")


# --- Queues -------------------------------------------------------------------------------


def _queue_values(queue: Mapping[str, Any]) -> dict[str, str]:
    return {
        "id": str(queue["id"]),
        "name": str(queue.get("name") or ""),
        "required_skills": ", ".join(queue.get("required_skills") or []),
        "strategy": str(queue.get("strategy") or "longest_idle"),
        "offer_timeout_s": str(queue.get("offer_timeout_s", 30)),
        "wrap_up_s": str(queue.get("wrap_up_s", 0)),
        "supervisors": ", ".join(queue.get("supervisors") or []),
        "managers": ", ".join(queue.get("managers") or []),
    }


def _queue_body(values: Mapping[str, str]) -> dict[str, Any]:
    return {
        "name": values.get("name", ""),
        "required_skills": words(values.get("required_skills", "")),
        "strategy": values.get("strategy", ""),
        "offer_timeout_s": whole_number("offer_timeout_s", values.get("offer_timeout_s", "")),
        "wrap_up_s": whole_number("wrap_up_s", values.get("wrap_up_s", "")),
        "supervisors": words(values.get("supervisors", "")),
        "managers": words(values.get("managers", "")),
    }


async def _queues_page(
    request: Request,
    who: SignedIn,
    *,
    editing: str | None = None,
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
) -> Response:
    queues = await _get(request, who, "router", "/v1/queues")
    forms = [_queue_values(q) for q in queues]
    if editing is not None and values is not None:
        forms = [f | values if f["id"] == editing else f for f in forms]
    new = _queue_values({"id": ""}) | (values if editing == "" and values is not None else {})
    return _page(
        request,
        who,
        "admin/queues.html",
        errors=errors,
        forms=forms,
        new=new,
        editing=editing,
        strategies=STRATEGIES,
    )


@router.get("/queues", summary="Supervisors: the queues, to change or add")
async def queues_page(request: Request, who: SignedIn = Supervisor) -> Response:
    return await _queues_page(request, who)


@router.post("/queues", summary="Supervisors: create or change a queue (router PUT /v1/queues)")
async def save_queue(request: Request, who: SignedIn = SupervisorChange) -> Response:
    values = await _form(request)
    queue_id = values.get("id", "").strip()
    editing = "" if values.get("new") else queue_id
    errors = FieldErrors()
    if not _ROUTER_ID.match(queue_id):
        errors.fields["id"] = ["letters, digits and . _ : - (up to 64)"]
        return await _queues_page(request, who, editing=editing, values=values, errors=errors)
    try:
        body = _queue_body(values)
    except FormError as exc:
        errors.fields[exc.field] = [exc.message]
        return await _queues_page(request, who, editing=editing, values=values, errors=errors)
    response = await _call(request, who, "router", "PUT", f"/v1/queues/{quote(queue_id)}", body)
    if not response.is_success:
        errors = field_errors(_problem(response))
        return await _queues_page(request, who, editing=editing, values=values, errors=errors)
    return _back(f"/admin/queues?saved={quote(queue_id)}")


# --- Agents -------------------------------------------------------------------------------


def _agent_values(agent: Mapping[str, Any]) -> dict[str, str]:
    capacity = agent.get("capacity") or {"phone": 1, "chat": 3, "email": 5, "social": 5}
    values = {
        "id": str(agent["id"]),
        "name": str(agent.get("name") or ""),
        "role": str(agent.get("role") or "agent"),
        "skills": skills_text(agent.get("skills") or {}),
        "status": str(agent.get("status") or ""),
    }
    for channel in CHANNELS:
        values[f"capacity.{channel}"] = str(capacity.get(channel, 0))
    return values


def _agent_body(values: Mapping[str, str]) -> dict[str, Any]:
    return {
        "name": values.get("name", ""),
        "role": values.get("role", "agent"),
        "skills": skill_levels(values.get("skills", "")),
        "capacity": {
            channel: whole_number(f"capacity.{channel}", values.get(f"capacity.{channel}", "0"))
            for channel in CHANNELS
        },
    }


async def _agents_page(
    request: Request,
    who: SignedIn,
    *,
    editing: str | None = None,
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
) -> Response:
    agents = await _get(request, who, "router", "/v1/agents")
    forms = [_agent_values(a) for a in agents]
    if editing is not None and values is not None:
        forms = [f | values | {"status": f["status"]} if f["id"] == editing else f for f in forms]
    new = _agent_values({"id": ""}) | (values if editing == "" and values is not None else {})
    return _page(
        request,
        who,
        "admin/agents.html",
        errors=errors,
        forms=forms,
        new=new,
        editing=editing,
        roles=ROLES,
        channels=CHANNELS,
    )


@router.get("/agents", summary="Supervisors: the agents (skills, capacities), to change or add")
async def agents_page(request: Request, who: SignedIn = Supervisor) -> Response:
    return await _agents_page(request, who)


@router.post("/agents", summary="Supervisors: create or change an agent (router PUT /v1/agents)")
async def save_agent(request: Request, who: SignedIn = SupervisorChange) -> Response:
    values = await _form(request)
    agent_id = values.get("id", "").strip()
    editing = "" if values.get("new") else agent_id
    errors = FieldErrors()
    if not _ROUTER_ID.match(agent_id):
        errors.fields["id"] = ["letters, digits and . _ : - (up to 64)"]
        return await _agents_page(request, who, editing=editing, values=values, errors=errors)
    try:
        body = _agent_body(values)
    except FormError as exc:
        errors.fields[exc.field] = [exc.message]
        return await _agents_page(request, who, editing=editing, values=values, errors=errors)
    response = await _call(request, who, "router", "PUT", f"/v1/agents/{quote(agent_id)}", body)
    if not response.is_success:
        errors = field_errors(_problem(response))
        return await _agents_page(request, who, editing=editing, values=values, errors=errors)
    return _back(f"/admin/agents?saved={quote(agent_id)}")


# --- Routing policy and classification rules: JSON documents with a structured view --------


_DOCUMENTS: dict[str, dict[str, str]] = {
    # page -> the router's path, the document's list and the fields the structured view shows
    "routing-policy": {
        "path": "/v1/routing-policy",
        "items": "steps",
        "columns": "id condition queue_id priority timeout_s overflow_only",
    },
    "classification-rules": {
        "path": "/v1/classification-rules",
        "items": "rules",
        "columns": "id description keywords condition category priority queue_hint stop fallback",
    },
}


def _document_page(
    request: Request,
    who: SignedIn,
    page: str,
    *,
    text: str,
    version: Any,
    errors: FieldErrors | None = None,
) -> Response:
    spec = _DOCUMENTS[page]
    items_name = spec["items"]
    try:
        document = parse_json_document(text)
    except FormError:
        document = None
    raw_items = document.get(items_name) if isinstance(document, dict) else None
    items = raw_items if isinstance(raw_items, list) else []
    lines = {index: line_of_item(text, items_name, index) for index in range(len(items))}
    return _page(
        request,
        who,
        "admin/document.html",
        errors=errors,
        page=page,
        text=text,
        version=version,
        items_name=items_name,
        items=[i if isinstance(i, dict) else {} for i in items],
        columns=spec["columns"].split(),
        lines=lines,
    )


async def _current_document(request: Request, who: SignedIn, page: str) -> tuple[str, Any]:
    spec = _DOCUMENTS[page]
    current = await _get(request, who, "router", spec["path"])
    items_name = spec["items"]
    return pretty({items_name: current[items_name]}), current.get("version")


async def _save_document(request: Request, who: SignedIn, page: str) -> Response:
    spec = _DOCUMENTS[page]
    values = await _form(request)
    text = values.get("document", "")
    try:
        document = parse_json_document(text)
    except FormError as exc:
        _, version = await _current_document(request, who, page)
        errors = FieldErrors(fields={"document": [exc.message]})
        return _document_page(request, who, page, text=text, version=version, errors=errors)
    response = await _call(request, who, "router", "PUT", spec["path"], document)
    if not response.is_success:
        _, version = await _current_document(request, who, page)
        errors = field_errors(_problem(response), items=spec["items"])
        return _document_page(request, who, page, text=text, version=version, errors=errors)
    return _back(f"/admin/{page}?saved={response.json().get('version', '')}")


@router.get("/routing-policy", summary="Supervisors: the routing policy, to edit")
async def routing_policy_page(request: Request, who: SignedIn = Supervisor) -> Response:
    text, version = await _current_document(request, who, "routing-policy")
    return _document_page(request, who, "routing-policy", text=text, version=version)


@router.post(
    "/routing-policy", summary="Supervisors: replace the routing policy (router PUT, a version)"
)
async def save_routing_policy(request: Request, who: SignedIn = SupervisorChange) -> Response:
    return await _save_document(request, who, "routing-policy")


@router.get("/classification-rules", summary="Supervisors: the classification rules, to edit")
async def rules_page(request: Request, who: SignedIn = Supervisor) -> Response:
    text, version = await _current_document(request, who, "classification-rules")
    return _document_page(request, who, "classification-rules", text=text, version=version)


@router.post(
    "/classification-rules",
    summary="Supervisors: replace the classification rules (router PUT, a version)",
)
async def save_rules(request: Request, who: SignedIn = SupervisorChange) -> Response:
    return await _save_document(request, who, "classification-rules")


# --- SLA policies and calendars: one JSON document each ------------------------------------


_SLA_KINDS = {"sla-policies": "/v1/policies", "calendars": "/v1/calendars"}


def _sla_document(view: Mapping[str, Any]) -> str:
    return pretty({k: v for k, v in view.items() if k not in _SLA_VIEW_ONLY})


async def _sla_page(
    request: Request,
    who: SignedIn,
    kind: str,
    *,
    selected: str | None = None,
    text: str | None = None,
    errors: FieldErrors | None = None,
) -> Response:
    listed = await _get(request, who, "sla", _SLA_KINDS[kind])
    current = next((v for v in listed if v["id"] == selected), None)
    if text is None:
        text = _sla_document(current) if current else ""
    return _page(
        request,
        who,
        "admin/sla.html",
        errors=errors,
        kind=kind,
        listed=listed,
        selected=selected if current else None,
        text=text,
    )


@router.get("/sla-policies", summary="Supervisors: SLA policies, to edit or add")
async def sla_policies_page(request: Request, who: SignedIn = Supervisor) -> Response:
    return await _sla_page(request, who, "sla-policies", selected=request.query_params.get("id"))


@router.get("/calendars", summary="Supervisors: SLA calendars, to edit or add")
async def calendars_page(request: Request, who: SignedIn = Supervisor) -> Response:
    return await _sla_page(request, who, "calendars", selected=request.query_params.get("id"))


async def _save_sla(request: Request, who: SignedIn, kind: str) -> Response:
    values = await _form(request)
    text = values.get("document", "")
    selected = values.get("selected") or None
    try:
        document = parse_json_document(text)
        if not isinstance(document, dict):
            raise FormError("document", "a JSON object")
    except FormError as exc:
        errors = FieldErrors(fields={"document": [exc.message]})
        return await _sla_page(request, who, kind, selected=selected, text=text, errors=errors)
    item_id = str(document.get("id") or selected or "")
    if not _SLA_ID.match(item_id):
        errors = FieldErrors(fields={"id": ["lower-case letters, digits and _ . - (up to 64)"]})
        return await _sla_page(request, who, kind, selected=selected, text=text, errors=errors)
    path = _SLA_KINDS[kind]
    if selected:
        body = {k: v for k, v in document.items() if k != "id"}
        response = await _call(request, who, "sla", "PUT", f"{path}/{selected}", body)
    else:
        response = await _call(request, who, "sla", "POST", path, document | {"id": item_id})
    if not response.is_success:
        errors = field_errors(_problem(response))
        return await _sla_page(request, who, kind, selected=selected, text=text, errors=errors)
    return _back(f"/admin/{kind}?id={quote(item_id)}&saved={quote(item_id)}")


@router.post("/sla-policies", summary="Supervisors: create or change an SLA policy (SLA API)")
async def save_sla_policy(request: Request, who: SignedIn = SupervisorChange) -> Response:
    return await _save_sla(request, who, "sla-policies")


@router.post("/calendars", summary="Supervisors: create or change an SLA calendar (SLA API)")
async def save_calendar(request: Request, who: SignedIn = SupervisorChange) -> Response:
    return await _save_sla(request, who, "calendars")


@router.post(
    "/sla-policies/{policy_id}/deactivate",
    summary="Supervisors: deactivate an SLA policy (no new tickets; its tickets stop escalating)",
)
async def deactivate_sla_policy(
    request: Request, policy_id: str, who: SignedIn = SupervisorChange
) -> Response:
    if not _SLA_ID.match(policy_id):
        raise NotAllowed
    response = await _call(request, who, "sla", "POST", f"/v1/policies/{policy_id}/deactivate")
    if not response.is_success:
        errors = field_errors(_problem(response))
        return await _sla_page(request, who, "sla-policies", selected=policy_id, errors=errors)
    return _back(f"/admin/sla-policies?id={quote(policy_id)}")


# --- Canned responses ---------------------------------------------------------------------


_CANNED_FIELDS = ("queue_id", "language", "title", "body")


async def _canned_page(
    request: Request,
    who: SignedIn,
    *,
    editing: str | None = None,
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
) -> Response:
    listed = await _get(request, who, "router", "/v1/canned-responses")
    forms = [{"id": str(c["id"]), **{f: str(c[f]) for f in _CANNED_FIELDS}} for c in listed]
    if editing and values is not None:
        forms = [f | values | {"id": editing} if f["id"] == editing else f for f in forms]
    blank = {"id": "", **dict.fromkeys(_CANNED_FIELDS, "")}
    new = blank | (values if editing == "" and values is not None else {})
    queues = await _get(request, who, "router", "/v1/queues")
    return _page(
        request,
        who,
        "admin/canned.html",
        errors=errors,
        forms=forms,
        new=new,
        editing=editing,
        queue_ids=[q["id"] for q in queues],
    )


@router.get("/canned-responses", summary="Supervisors: canned responses, to change or add")
async def canned_page(request: Request, who: SignedIn = Supervisor) -> Response:
    return await _canned_page(request, who)


@router.post(
    "/canned-responses",
    summary="Supervisors: create (no id) or change a canned response (router API)",
)
async def save_canned(request: Request, who: SignedIn = SupervisorChange) -> Response:
    values = await _form(request)
    canned_id = values.get("id", "")
    body = {f: values.get(f, "") for f in _CANNED_FIELDS}
    if canned_id:
        try:
            uuid.UUID(canned_id)
        except ValueError:
            raise NotAllowed from None
        path = f"/v1/canned-responses/{canned_id}"
        response = await _call(request, who, "router", "PUT", path, body)
    else:
        response = await _call(request, who, "router", "POST", "/v1/canned-responses", body)
    if not response.is_success:
        errors = field_errors(_problem(response))
        return await _canned_page(request, who, editing=canned_id, values=values, errors=errors)
    return _back(f"/admin/canned-responses?saved={quote(body['title'])}")


@router.post(
    "/canned-responses/{canned_id}/delete", summary="Supervisors: remove a canned response"
)
async def delete_canned(
    request: Request, canned_id: uuid.UUID, who: SignedIn = SupervisorChange
) -> Response:
    response = await _call(request, who, "router", "DELETE", f"/v1/canned-responses/{canned_id}")
    if not response.is_success:
        return await _canned_page(request, who, errors=field_errors(_problem(response)))
    return _back("/admin/canned-responses")


# --- Webhooks (feedback) ------------------------------------------------------------------


async def _webhooks_page(
    request: Request,
    who: SignedIn,
    *,
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
    created: dict[str, Any] | None = None,
) -> Response:
    listed = await _get(request, who, "feedback", "/v1/webhooks")
    return _page(
        request,
        who,
        "admin/webhooks.html",
        errors=errors,
        webhooks=listed,
        new={"channel": "chat", "url": "", "description": ""} | (values or {}),
        channels=CHANNELS,
        created=created,
    )


@router.get("/webhooks", summary="Supervisors: survey webhooks (feedback), to add or change")
async def webhooks_page(request: Request, who: SignedIn = Supervisor) -> Response:
    return await _webhooks_page(request, who)


@router.post(
    "/webhooks",
    summary="Supervisors: add a survey webhook; its secret is shown once, on the answer",
)
async def create_webhook(request: Request, who: SignedIn = SupervisorChange) -> Response:
    values = await _form(request)
    body: dict[str, Any] = {"channel": values.get("channel", ""), "url": values.get("url", "")}
    if values.get("description"):
        body["description"] = values["description"]
    response = await _call(request, who, "feedback", "POST", "/v1/webhooks", body)
    if not response.is_success:
        errors = field_errors(_problem(response))
        return await _webhooks_page(request, who, values=values, errors=errors)
    # Not a redirect: the secret is shown only now, and never again.
    return await _webhooks_page(request, who, created=response.json())


@router.post(
    "/webhooks/{webhook_id}/active", summary="Supervisors: switch a survey webhook on or off"
)
async def toggle_webhook(
    request: Request, webhook_id: uuid.UUID, who: SignedIn = SupervisorChange
) -> Response:
    values = await _form(request)
    body = {"active": values.get("active") == "true"}
    response = await _call(request, who, "feedback", "PATCH", f"/v1/webhooks/{webhook_id}", body)
    if not response.is_success:
        return await _webhooks_page(request, who, errors=field_errors(_problem(response)))
    return _back("/admin/webhooks")


@router.post("/webhooks/{webhook_id}/delete", summary="Supervisors: remove a survey webhook")
async def delete_webhook(
    request: Request, webhook_id: uuid.UUID, who: SignedIn = SupervisorChange
) -> Response:
    response = await _call(request, who, "feedback", "DELETE", f"/v1/webhooks/{webhook_id}")
    if not response.is_success:
        return await _webhooks_page(request, who, errors=field_errors(_problem(response)))
    return _back("/admin/webhooks")


# --- Key accounts (feedback) --------------------------------------------------------------


_KEY_ACCOUNT_FIELDS = ("customer_id", "name", "relationship_started_at", "channel", "language")


async def _key_accounts_page(
    request: Request,
    who: SignedIn,
    *,
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
) -> Response:
    listed = await _get(request, who, "feedback", "/v1/key-accounts")
    return _page(
        request,
        who,
        "admin/key_accounts.html",
        errors=errors,
        accounts=listed,
        new=dict.fromkeys(_KEY_ACCOUNT_FIELDS, "") | (values or {}),
        channels=CHANNELS,
    )


@router.get("/key-accounts", summary="Supervisors: key accounts (feedback), to add or change")
async def key_accounts_page(request: Request, who: SignedIn = Supervisor) -> Response:
    return await _key_accounts_page(request, who)


@router.post("/key-accounts", summary="Supervisors: register a key account (feedback API)")
async def create_key_account(request: Request, who: SignedIn = SupervisorChange) -> Response:
    values = await _form(request)
    body: dict[str, Any] = {
        "customer_id": values.get("customer_id", "").strip(),
        "name": values.get("name", ""),
        "relationship_started_at": _aware(values.get("relationship_started_at", "")),
    }
    for optional in ("channel", "language"):
        if values.get(optional):
            body[optional] = values[optional]
    response = await _call(request, who, "feedback", "POST", "/v1/key-accounts", body)
    if not response.is_success:
        errors = field_errors(_problem(response))
        return await _key_accounts_page(request, who, values=values, errors=errors)
    return _back(f"/admin/key-accounts?saved={quote(body['customer_id'])}")


def _aware(day: str) -> str:
    """A date input's `YYYY-MM-DD` as midnight UTC (the API wants an aware date-time); anything
    else is passed on for the API to judge."""
    day = day.strip()
    return f"{day}T00:00:00Z" if re.fullmatch(r"\d{4}-\d{2}-\d{2}", day) else day


@router.post(
    "/key-accounts/{customer_id}/active", summary="Supervisors: (de)activate a key account"
)
async def toggle_key_account(
    request: Request, customer_id: uuid.UUID, who: SignedIn = SupervisorChange
) -> Response:
    values = await _form(request)
    body = {"active": values.get("active") == "true"}
    path = f"/v1/key-accounts/{customer_id}"
    response = await _call(request, who, "feedback", "PATCH", path, body)
    if not response.is_success:
        return await _key_accounts_page(request, who, errors=field_errors(_problem(response)))
    return _back("/admin/key-accounts")
