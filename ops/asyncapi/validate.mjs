// Validates an AsyncAPI document with the official parser (@asyncapi/parser, Avro payloads through
// @asyncapi/avro-schema-parser). Usage: node validate.mjs FILE (or - for standard input).
// The parser validates the document against the AsyncAPI 3.0 schema, its references and the Kafka
// bindings, and converts the Avro payloads; for a 3.0 document (parser 3.6) it does not run the schema
// parsers' own validation, so every Avro payload is checked here too, by the Avro schema parser's
// `validate` (avsc), as the parser does for 2.x documents.
// Prints one JSON line: {"valid", "errors", "warnings", "channels", "messages", "operations", "avroPayloads"};
// exits 1 unless valid.
import { readFileSync } from 'node:fs';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';
import { AvroSchemaParser } from '@asyncapi/avro-schema-parser';

const source = process.argv[2] && process.argv[2] !== '-' ? process.argv[2] : 0;
const text = readFileSync(source, 'utf8');
const parser = new Parser();
const avro = AvroSchemaParser();
parser.registerSchemaParser(avro);
const { document, diagnostics } = await parser.parse(text);
const raw = JSON.parse(text);
const avroErrors = [];
let avroPayloads = 0;
for (const [id, message] of Object.entries(raw.components?.messages ?? {})) {
  const payload = message.payload ?? {};
  if (!avro.getMimeTypes().includes(payload.schemaFormat)) continue;
  avroPayloads += 1;
  const path = ['components', 'messages', id, 'payload', 'schema'];
  const found = await avro.validate({ data: payload.schema, path, schemaFormat: payload.schemaFormat, asyncapi: raw });
  for (const d of found) avroErrors.push({ code: 'avro-schema', message: d.message, path: path.join('.') });
}
const shown = (d) => ({ code: d.code, message: d.message, path: d.path.join('.') });
const errors = [...diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error).map(shown), ...avroErrors];
const warnings = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Warning).map(shown);
const valid = document !== undefined && errors.length === 0;
console.log(JSON.stringify({
  valid,
  version: document ? document.version() : null,
  errors,
  warnings,
  channels: document ? document.channels().length : 0,
  messages: document ? document.messages().length : 0,
  operations: document ? document.operations().length : 0,
  avroPayloads,
}));
process.exit(valid ? 0 : 1);
