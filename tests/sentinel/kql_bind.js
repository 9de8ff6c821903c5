// Binds KQL with Microsoft's Kusto.Language (npm @kusto/language-service-next): reads
// {tables: {name: "(col:type, ...)"}, functions: [{name, params, body}], queries: [{name, text}]}
// on stdin, writes {name: {errors: ["KS142 message"], columns: ["Col", ...]}} on stdout.
'use strict';
const path = require('path');
const fs = require('fs');
const dir = path.join(__dirname, '..', '..', 'node_modules', '@kusto', 'language-service-next');
require(path.join(dir, 'bridge.min.js'));
require(path.join(dir, 'Kusto.Language.Bridge.min.js'));
const K = Kusto.Language;
const input = JSON.parse(fs.readFileSync(0, 'utf8'));
const members = Object.entries(input.tables).map(([name, schema]) => new K.Symbols.TableSymbol.$ctor7(name, schema, null));
for (const f of input.functions) members.push(new K.Symbols.FunctionSymbol.$ctor16(f.name, f.params, `{\n${f.body}\n}`, null));
const globals = K.GlobalState.Default.WithDatabase(new K.Symbols.DatabaseSymbol.$ctor2('workspace', null, members));
const out = {};
for (const q of input.queries) {
  const code = K.KustoCode.ParseAndAnalyze(q.text, globals);
  const diagnostics = code.GetDiagnostics();
  const errors = [];
  for (let i = 0; i < diagnostics.Count; i++) {
    const d = diagnostics.getItem(i);
    if (d.Severity === 'Error') errors.push(`${d.Code} ${d.Message} (at ${d.Start})`);
  }
  const columns = [];
  const type = code.ResultType;
  if (type && type.Columns) for (let i = 0; i < type.Columns.Count; i++) columns.push(type.Columns.getItem(i).Name);
  out[q.name] = { errors, columns };
}
process.stdout.write(JSON.stringify(out));
