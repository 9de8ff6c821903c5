// Parses and binds KQL queries with Microsoft's Kusto.Language (npm @kusto/language-service-next).
// stdin: {"contexts": {NAME: {"tables": {TABLE: "(col:type, ...)"},
//                             "functions": [{"name", "parameters": "(a:string='x')", "body"}]}},
//         "queries": [{"id", "context", "text"}]}
// stdout: [{"id", "diagnostics": [{"severity", "code", "message", "start", "length"}], "columns": [NAME],
//          "columnTypes": [TYPE]}] ("columns"/"columnTypes": the query's result columns and their types.)
// Driven by infra/checks/kql_check.py, which finds the queries and builds the schemas, by
// tests/sentinel/test_rule_kql.py (rule result columns) and by .ci/sentinel_checks (ASIM schema).
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const require = createRequire(import.meta.url);
require("@kusto/language-service-next/bridge.min.js");
require("@kusto/language-service-next/Kusto.Language.Bridge.min.js");
const K = globalThis.Kusto.Language;
const S = K.Symbols;

function globalsFor(context) {
  const members = [];
  for (const [name, schema] of Object.entries(context.tables ?? {})) {
    members.push(new S.TableSymbol.$ctor7(name, schema, null));
  }
  for (const fn of context.functions ?? []) {
    // A newline before "}" so a trailing // comment in the body cannot swallow the brace.
    members.push(new S.FunctionSymbol.$ctor16(fn.name, fn.parameters, `{\n${fn.body}\n}`, null));
  }
  const database = new S.DatabaseSymbol.$ctor3("db", null, globalThis.Bridge.toList(members), false);
  return K.GlobalState.Default.WithDatabase(database);
}

const input = JSON.parse(readFileSync(0, "utf8"));
const globals = {};
for (const [name, context] of Object.entries(input.contexts)) globals[name] = globalsFor(context);

const results = [];
for (const query of input.queries) {
  const state = globals[query.context];
  if (!state) throw new Error(`unknown context ${query.context} for ${query.id}`);
  const code = K.KustoCode.ParseAndAnalyze(query.text, state);
  const list = code.GetDiagnostics();
  const diagnostics = [];
  for (let i = 0; i < list.Count; i++) {
    const d = list.getItem(i);
    diagnostics.push({ severity: d.Severity, code: d.Code, message: d.Message, start: d.Start, length: d.Length });
  }
  const columns = [];
  const columnTypes = [];
  const type = code.ResultType;
  if (type && type.Columns) {
    for (let i = 0; i < type.Columns.Count; i++) {
      const column = type.Columns.getItem(i);
      columns.push(column.Name);
      columnTypes.push(column.Type.Name);
    }
  }
  results.push({ id: query.id, diagnostics, columns, columnTypes });
}
process.stdout.write(JSON.stringify(results));
