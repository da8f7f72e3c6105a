// google-gax's REST operations client (what a generated Node client builds with
// `fallback: true`) against tower-lro's embedded server. Run by .ci/run; see
// README.md. TOWER_LRO_ADDR=127.0.0.1:PORT; WITH_STRUCT=1 adds
// google/protobuf/struct.proto to the client's proto root.
const gax = require('google-gax');
const [host, port] = process.env.TOWER_LRO_ADDR.split(':');
const base = `http://${host}:${port}`;
// A real google-auth-library client with a static token (the server ignores it).
const { OAuth2Client } = require('google-auth-library');
const auth = new OAuth2Client();
auth.setCredentials({ access_token: 'test-token', expiry_date: Date.now() + 3600e3 });
// The bindings a generated client for a `projects/*/locations/*` API passes.
const httpRules = [
  { selector: 'google.longrunning.Operations.CancelOperation', post: '/v1/{name=projects/*/locations/*/operations/*}:cancel', body: '*' },
  { selector: 'google.longrunning.Operations.DeleteOperation', delete: '/v1/{name=projects/*/locations/*/operations/*}' },
  { selector: 'google.longrunning.Operations.GetOperation', get: '/v1/{name=projects/*/locations/*/operations/*}' },
  { selector: 'google.longrunning.Operations.ListOperations', get: '/v1/{name=projects/*/locations/*}/operations' },
];
// As a generated client builds it with `fallback: true` (REST): the
// operations protos as the root, then operationsClient(opts).
const root = gax.protobuf.Root.fromJSON(require(require.resolve('google-gax').replace(/build\/src\/index\.js$/, 'build/protos/operations.json')));
// A generated client's root holds its API's protos; with WITH_STRUCT=1, as for
// an API whose protos import google/protobuf/struct.proto.
if (process.env.WITH_STRUCT) root.addJSON(gax.protobuf.common.get('google/protobuf/struct.proto').nested);
const client = gax.fallback.lro({ auth, protoJson: root, httpRules }).operationsClient({ servicePath: host, port: Number(port), protocol: 'http', fallback: true });
let passed = 0, failed = 0;
async function scenario(name, f) {
  try { await f(); passed++; console.log(`ok   ${name}`); }
  catch (e) { failed++; console.log(`FAIL ${name}: ${e && e.message}`); }
}
function assert(c, m) { if (!c) throw new Error(m || 'assertion failed'); }
const parent = () => `projects/js-${Math.random().toString(16).slice(2, 10)}/locations/l`;
async function start(p, ms) {
  const r = await fetch(`${base}/v1/${p}/jobs`, { method: 'POST', body: JSON.stringify({ durationMs: ms }) });
  return (await r.json()).name;
}
const structOf = (any) => {
  const url = any.type_url || any.typeUrl;
  assert(url === 'type.googleapis.com/google.protobuf.Struct', `type ${JSON.stringify(any)}`);
};
// What a generated client's descriptor does: decode the Any's bytes as the declared type.
const decodeStruct = (bytes) => {
  const Struct = root.lookupType('google.protobuf.Struct');
  return Struct.toObject(Struct.decode(bytes));
};
(async () => {
  await scenario('get running: metadata is a Struct Any', async () => {
    const p = parent(); const name = await start(p, 60000);
    const [op] = await client.getOperation({ name });
    assert(op.name === name && !op.done, 'not running');
    structOf(op.metadata);
    assert(op.metadata.value && op.metadata.value.length > 0, 'metadata bytes');
  });
  await scenario('get succeeded: response is a Struct Any', async () => {
    const p = parent(); const name = await start(p, 0);
    const [op] = await client.getOperation({ name });
    assert(op.done && op.result === 'response', `result ${op.result}`);
    structOf(op.response);
  });
  await scenario('get unknown: NOT_FOUND', async () => {
    try { await client.getOperation({ name: `${parent()}/operations/nope` }, { retry: null }); throw new Error('no error'); }
    catch (e) { assert(e.code === 5, `code ${e.code}`); }
  });
  await scenario('list pages', async () => {
    const p = parent(); const names = [];
    for (let i = 0; i < 5; i++) names.push(await start(p, 60000));
    const got = [];
    for await (const op of client.listOperationsAsync({ name: p, filter: '', pageSize: 2 })) got.push(op.name);
    assert(JSON.stringify(got) === JSON.stringify(names), JSON.stringify(got));
  });
  for (const [filter, want] of [['done=true', 'done'], ['done = false', 'running'], ['NOT done', 'running']]) {
    await scenario(`list filter ${filter}`, async () => {
      const p = parent(); const d = await start(p, 0); const r = await start(p, 60000);
      const got = [];
      for await (const op of client.listOperationsAsync({ name: p, filter, pageSize: 1 })) got.push(op.name);
      assert(JSON.stringify(got) === JSON.stringify(want === 'done' ? [d] : [r]), JSON.stringify(got));
    });
  }
  await scenario('list bad filter: INVALID_ARGUMENT', async () => {
    try { const it = client.listOperationsAsync({ name: parent(), filter: 'name=x' }); for await (const _ of it) {} throw new Error('no error'); }
    catch (e) { assert(e.code === 3, `code ${e.code} ${e.message}`); }
  });
  await scenario('cancel: done with CANCELLED', async () => {
    const name = await start(parent(), 60000);
    await client.cancelOperation({ name });
    const [op] = await client.getOperation({ name });
    assert(op.done && op.error && op.error.code === 1, JSON.stringify(op.error));
  });
  await scenario('delete: then NOT_FOUND', async () => {
    const name = await start(parent(), 60000);
    await client.deleteOperation({ name });
    try { await client.getOperation({ name }); throw new Error('no error'); } catch (e) { assert(e.code === 5, `code ${e.code}`); }
  });
  await scenario('operation future: promise() resolves with the Struct response', async () => {
    const name = await start(parent(), 1500);
    const [raw] = await client.getOperation({ name });
    const desc = new gax.LongrunningDescriptor(client, decodeStruct, decodeStruct);
    const op = gax.operation(raw, desc, gax.createDefaultBackoffSettings());
    const [result, metadata] = await op.promise();
    assert(result.fields.state.stringValue === 'SUCCEEDED', JSON.stringify(result));
    assert(metadata.fields.progressPercent.numberValue === 100, JSON.stringify(metadata));
  });
  await scenario('operation future: cancel()', async () => {
    const name = await start(parent(), 60000);
    const [raw] = await client.getOperation({ name });
    const desc = new gax.LongrunningDescriptor(client, decodeStruct, decodeStruct);
    const op = gax.operation(raw, desc, gax.createDefaultBackoffSettings());
    await op.cancel();
    const [after] = await client.getOperation({ name });
    assert(after.done && after.error.code === 1, 'not cancelled');
  });
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
