#!/usr/bin/env node
// Validate Backstage catalog files the way the catalog does, with Backstage's own code.
//
//   node dev/validate-backstage.mjs catalog-info.yaml backstage/template.yaml ...
//
// Every YAML document must be an entity that passes the catalog's entity policies (schema,
// default namespace, no foreign root fields, field formats) and the validator of its kind
// (@backstage/catalog-model for Component, API, Location, ...; @backstage/plugin-scaffolder-common
// for scaffolder.backstage.io/v1beta3 Template). Templates get two more checks the catalog
// leaves to run time: every `parameters.X` used by the steps and the output is a declared
// parameter, and every `steps.X` / `steps['X']` is an earlier step.
// Placeholders (`$text`, `$json`, `$yaml`) are substituted first, as the catalog's
// PlaceholderProcessor does: a relative target must exist next to the file.
// Prints one line per entity; exits 1 when any is invalid, 2 on usage errors.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';

const require = createRequire(import.meta.url);
const { parse: parseYaml, parseAllDocuments } = require('yaml');
const model = require('@backstage/catalog-model');
const { templateEntityV1beta3Validator } = require('@backstage/plugin-scaffolder-common');

const policy = model.EntityPolicies.allOf([
  new model.DefaultNamespaceEntityPolicy(),
  new model.NoForeignRootFieldsEntityPolicy(),
  new model.FieldFormatEntityPolicy(),
  new model.SchemaValidEntityPolicy(),
]);

const kindValidators = [
  model.apiEntityV1alpha1Validator,
  model.componentEntityV1alpha1Validator,
  model.domainEntityV1alpha1Validator,
  model.groupEntityV1alpha1Validator,
  model.locationEntityV1alpha1Validator,
  model.resourceEntityV1alpha1Validator,
  model.systemEntityV1alpha1Validator,
  model.userEntityV1alpha1Validator,
  templateEntityV1beta3Validator,
];

const REF_FIELDS = { owner: 'group', system: 'system', domain: 'domain' };

function checkRefs(entity) {
  for (const [field, defaultKind] of Object.entries(REF_FIELDS)) {
    const value = entity.spec?.[field];
    if (value !== undefined) {
      // Throws with Backstage's own message when the reference is malformed.
      model.parseEntityRef(value, { defaultKind, defaultNamespace: 'default' });
    }
  }
}

function collectStrings(node, out = []) {
  if (typeof node === 'string') out.push(node);
  else if (Array.isArray(node)) node.forEach(item => collectStrings(item, out));
  else if (node && typeof node === 'object') Object.values(node).forEach(v => collectStrings(v, out));
  return out;
}

function declaredParameters(parameters) {
  const names = new Set();
  const visit = schema => {
    if (!schema || typeof schema !== 'object') return;
    for (const name of Object.keys(schema.properties ?? {})) names.add(name);
    for (const key of ['allOf', 'anyOf', 'oneOf']) (schema[key] ?? []).forEach(visit);
    for (const dependency of Object.values(schema.dependencies ?? {})) visit(dependency);
    if (schema.then) visit(schema.then);
    if (schema.else) visit(schema.else);
  };
  (Array.isArray(parameters) ? parameters : [parameters]).forEach(visit);
  return names;
}

function checkTemplateReferences(entity) {
  const problems = [];
  const parameters = declaredParameters(entity.spec.parameters);
  const stepIds = [];
  const check = (where, node) => {
    for (const text of collectStrings(node)) {
      for (const expression of text.match(/\$\{\{.*?\}\}/gs) ?? []) {
        for (const [, name] of expression.matchAll(/parameters\.([A-Za-z_][\w]*)/g)) {
          if (!parameters.has(name)) problems.push(`${where} uses parameters.${name}, which no parameter declares`);
        }
        for (const [, a, b] of expression.matchAll(/steps(?:\.([\w-]+)|\[['"]([\w-]+)['"]\])/g)) {
          const id = a ?? b;
          if (!stepIds.includes(id)) problems.push(`${where} uses steps.${id}, which is not an earlier step`);
        }
      }
    }
  };
  for (const [index, step] of (entity.spec.steps ?? []).entries()) {
    check(`step ${step.id ?? index}`, step);
    if (step.id) stepIds.push(step.id);
  }
  check('output', entity.spec.output ?? {});
  if (problems.length) throw new Error(problems.join('; '));
}

const PLACEHOLDERS = { $text: text => text, $json: text => JSON.parse(text), $yaml: text => parseYaml(text) };

async function substitutePlaceholders(node, baseDir) {
  if (Array.isArray(node)) return Promise.all(node.map(item => substitutePlaceholders(item, baseDir)));
  if (!node || typeof node !== 'object') return node;
  const keys = Object.keys(node);
  if (keys.length === 1 && keys[0] in PLACEHOLDERS) {
    const target = node[keys[0]];
    if (typeof target !== 'string') throw new Error(`placeholder ${keys[0]} must be a string`);
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return `(remote ${keys[0]} ${target}: not fetched)`;
    let text;
    try {
      text = await readFile(resolve(baseDir, target), 'utf8');
    } catch {
      throw new Error(`placeholder ${keys[0]}: ${target} does not exist next to the catalog file`);
    }
    return PLACEHOLDERS[keys[0]](text);
  }
  const out = {};
  for (const [key, value] of Object.entries(node)) out[key] = await substitutePlaceholders(value, baseDir);
  return out;
}

async function validate(entity) {
  if (!entity || typeof entity !== 'object' || Array.isArray(entity)) {
    throw new Error('the document is not a mapping (an entity has apiVersion, kind, metadata, spec)');
  }
  await policy.enforce(entity);
  let handled = false;
  for (const validator of kindValidators) {
    if (await validator.check(entity)) handled = true;
  }
  if (!handled) {
    throw new Error(`no validator for apiVersion '${entity.apiVersion}' kind '${entity.kind}'`);
  }
  checkRefs(entity);
  if (entity.kind === 'Template') checkTemplateReferences(entity);
}

async function main(files) {
  if (!files.length) {
    console.error('usage: node dev/validate-backstage.mjs FILE.yaml [FILE.yaml ...]');
    return 2;
  }
  let failures = 0;
  for (const file of files) {
    let documents;
    try {
      documents = parseAllDocuments(await readFile(file, 'utf8'));
    } catch (error) {
      console.log(`FAIL ${file}: cannot read: ${error.message}`);
      failures += 1;
      continue;
    }
    if (!documents.length) {
      console.log(`FAIL ${file}: no entity in the file`);
      failures += 1;
    }
    for (const [index, document] of documents.entries()) {
      const where = `${file}#${index + 1}`;
      if (document.errors.length) {
        console.log(`FAIL ${where}: YAML: ${document.errors.map(e => e.message).join('; ')}`);
        failures += 1;
        continue;
      }
      let entity = document.toJS();
      try {
        entity = await substitutePlaceholders(entity, dirname(resolve(file)));
        await validate(entity);
        console.log(`ok   ${where}: ${entity.kind}:${entity.metadata.namespace ?? 'default'}/${entity.metadata.name}`);
      } catch (error) {
        const name = entity?.metadata?.name ?? '?';
        console.log(`FAIL ${where}: ${entity?.kind ?? '?'} ${name}: ${error.message}`);
        failures += 1;
      }
    }
  }
  return failures ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
