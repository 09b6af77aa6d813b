# shellcheck shell=bash
# Sanity steps of a RAG service, sourced by sanity-test.sh (which defines step, expect,
# expect_text, BASE_URL and the http_call results HTTP_STATUS / HTTP_BODY).
# The main use case end to end: ingest a document, ask a question it answers, get an
# answer that cites it; plus readiness and the model metrics.

sanity_steps() {
  step "liveness" GET /healthz 200
  step "readiness" GET /readyz 200
  expect "readiness reports ok with every dependency" '.status == "ok" and (.checks | all(. == "ok"))'

  local id payload
  # A document of its own per run; re-ingesting the same id replaces it.
  id="sanity-${CI_JOB_ID:-local}"
  payload=$(jq -cn --arg id "$id" '{documents: [{id: $id, title: "Sanity check",
    source: "scripts-ci/test/sanity-test.sh",
    text: "The sanity beacon of this service glows turquoise on Tuesdays. It is checked after every deployment."}]}')
  step "ingest a document" POST /documents 201 "$payload"
  expect "the store holds chunks" '.documents >= 1 and .chunks >= 1'

  step "ask what the document answers" POST /query 200 '{"question": "What colour does the sanity beacon glow?", "top_k": 3}'
  # shellcheck disable=SC2016 # $id is a jq variable
  expect "the answer cites the ingested document" '.citations | any(.document_id == $id)' --arg id "$id"
  expect "the answer carries [n] citation markers" '.answer | test("\\[[0-9]+\\]")'

  step "reject an empty question" POST /query 422 '{"question": ""}'

  step "metrics" GET /metrics 200
  expect_text "metrics count the calls just made" '^http_requests_total\{.*route="/query".*\} [1-9]'
}
