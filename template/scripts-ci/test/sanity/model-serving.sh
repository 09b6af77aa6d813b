# shellcheck shell=bash
# Sanity steps of a model-serving service, sourced by sanity-test.sh (which defines step,
# expect, expect_text, BASE_URL and the http_call results HTTP_STATUS / HTTP_BODY).
# The main use case end to end: the served model says which version it is and what it
# takes; a row of valid values (its training means) is predicted, alone and in a batch, by
# that version; a row with an unknown field is refused with a 422 that names the field.

sanity_steps() {
  step "liveness" GET /healthz 200
  step "readiness" GET /readyz 200
  expect "readiness reports the model loaded" '.status == "ok" and .checks.model == "ok"'

  step "the served model" GET /model 200
  expect "the model has a version and named inputs" '(.model_version | test("^[0-9]+$")) and (.inputs | length > 0)'
  local version row
  version=$(jq -r '.model_version' <<<"$HTTP_BODY")
  row=$(jq -c '[.inputs[] | {(.name): .example}] | add' <<<"$HTTP_BODY")

  step "predict one row" POST /predict 200 "{\"inputs\": $row}"
  # shellcheck disable=SC2016 # $version is a jq variable
  expect "the answer comes from the served version" '.model_version == $version and has("prediction")' --arg version "$version"

  step "predict a batch" POST /predict/batch 200 "{\"inputs\": [$row, $row]}"
  # shellcheck disable=SC2016 # $version is a jq variable
  expect "one prediction per row, from the served version" '(.predictions | length == 2) and .model_version == $version' --arg version "$version"

  step "reject an unknown feature" POST /predict 422 "{\"inputs\": $(jq -c '. + {"sanity_unknown_feature": 1}' <<<"$row")}"
  expect "the 422 names the field" 'any(.detail[]; .loc[-1] == "sanity_unknown_feature")'

  step "metrics" GET /metrics 200
  expect_text "metrics measure predictions by model version" "^model_prediction_duration_seconds_count\\{.*model_version=\"$version\".*\\} [1-9]"
  expect_text "metrics hold the drift signal" '^model_drift_psi\{|^model_info\{'
}
