// Workflow histories as JSON (the format of `temporal workflow show -o json` and the Web UI's export)
// to and from the SDK's History, for replay fixtures.
//
// Not @temporalio/common's historyFromJSON/historyToJSON: with this lock file they throw "type must
// be a Type". dockerode needs protobufjs 7 at the top of node_modules, so @temporalio/common and
// @temporalio/proto each get their own protobufjs 8 copy, and the protojson of common's copy does not
// accept the types built by proto's. Here protojson comes from the copy @temporalio/proto uses.
import path from 'node:path';
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';

type History = proto.temporal.api.history.v1.IHistory;
interface ProtoJson {
  fromJson(type: unknown, json: unknown, options?: { ignoreUnknownFields?: boolean }): History | null;
  toJson(type: unknown, message: unknown): unknown;
}

const protoDir = path.dirname(require.resolve('@temporalio/proto/package.json'));
const protojson: ProtoJson = require(require.resolve('protobufjs/ext/protojson', { paths: [protoDir] }));
const historyType = (patchProtobufRoot(proto) as unknown as { lookupType(name: string): unknown }).lookupType('temporal.api.history.v1.History');

/** A JSON history (parsed) as the SDK's History; unknown fields (a newer server's) are ignored. */
export function historyFromJson(json: unknown): History {
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { events?: unknown }).events)) {
    throw new TypeError('not a history: expected an object with an array of events');
  }
  const history = protojson.fromJson(historyType, json, { ignoreUnknownFields: true });
  if (!history) throw new TypeError('not a history');
  return history;
}

/** The SDK's History as proto JSON, in the same form the Temporal CLI writes. */
export function historyToJson(history: History): unknown {
  return protojson.toJson(historyType, proto.temporal.api.history.v1.History.fromObject(history));
}
