# shellcheck shell=bash
# Sanity steps of a microservice, sourced by sanity-test.sh (which defines step, expect,
# expect_text, BASE_URL and the http_call results HTTP_STATUS / HTTP_BODY).
# With a database: the /items resource end to end (create, read, list, conflict, not
# found, validation). Without: health, readiness and metrics say what they should.

sanity_steps() {
  step "liveness" GET /healthz 200
  expect "liveness reports ok" '.status == "ok"'
  step "readiness" GET /readyz 200
  expect "readiness reports ok with every dependency" '.status == "ok" and (.checks | all(. == "ok"))'

  if [[ "$USE_DATABASE" == true ]]; then
    sanity_items
  fi

  step "metrics" GET /metrics 200
  expect_text "metrics count the calls just made" '^http_requests_total\{.*route="/healthz".*\} [1-9]'
  expect_text "metrics measure latency" '^http_request_duration_seconds_bucket\{'
  expect_text "metrics report process memory" '^process_resident_memory_bytes [0-9]'
}

sanity_items() {
  local name id
  # A name of its own per run: the test leaves one clearly labelled item behind.
  name="sanity-test $(date -u +%Y%m%dT%H%M%SZ)-${CI_JOB_ID:-local}-$RANDOM"
  local payload
  payload=$(jq -cn --arg name "$name" '{name: $name, description: "created by scripts-ci/test/sanity-test.sh"}')

  step "create an item" POST /items 201 "$payload"
  # shellcheck disable=SC2016 # $name and $id are jq variables
  expect "the created item has an id and the given name" '(.id | type == "number") and .name == $name' --arg name "$name"
  id=$(jq -r '.id' <<<"$HTTP_BODY")

  step "read it back" GET "/items/$id" 200
  # shellcheck disable=SC2016 # $name and $id are jq variables
  expect "the item read back is the one created" '.id == ($id | tonumber) and .name == $name' --arg id "$id" --arg name "$name"

  step "list items" GET "/items?limit=5" 200
  expect "the list is an array of items" 'type == "array" and length >= 1 and all(has("id") and has("name"))'

  step "refuse a duplicate name" POST /items 409 "$payload"
  step "unknown item is not found" GET /items/0 404
  step "reject an invalid item" POST /items 422 '{"name": ""}'
}
