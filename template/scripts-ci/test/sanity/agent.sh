# shellcheck shell=bash
# Sanity steps of an agent service, sourced by sanity-test.sh (which defines step, expect,
# expect_text, BASE_URL and the http_call results HTTP_STATUS / HTTP_BODY).
# The main use case end to end: a question that needs a tool is answered with the tool's
# result, the run's transcript can be read back, and the tools are listed.

sanity_steps() {
  step "liveness" GET /healthz 200
  step "readiness" GET /readyz 200
  expect "readiness reports ok with every dependency" '.status == "ok" and (.checks | all(. == "ok"))'

  step "list the tools" GET /agent/tools 200
  expect "the calculator is offered with a JSON schema" 'any(.name == "calculator" and (.parameters | type == "object"))'

  step "run a question that needs a tool" POST /agent/runs 200 '{"question": "What is 17 * 23 + 4?"}'
  expect "the agent called the calculator" '.tool_calls | index("calculator") != null'
  expect "the answer holds the tool result" '.stop_reason == "answered" and (.answer | contains("395"))'
  local run_id
  run_id=$(jq -r '.run_id' <<<"$HTTP_BODY")

  step "read the run's transcript back" GET "/agent/runs/$run_id" 200
  expect "the transcript records the tool call and its result" '(.transcript | any(.kind == "tool_call" and .tool == "calculator")) and (.transcript | any(.kind == "tool_result"))'

  step "reject an empty question" POST /agent/runs 422 '{"question": ""}'

  step "metrics" GET /metrics 200
  expect_text "metrics count the calls just made" '^http_requests_total\{.*route="/agent/runs".*\} [1-9]'
}
