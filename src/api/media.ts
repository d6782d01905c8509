/** Media type of streamed progress (one JSON object per line): no runtime dependency, so the SDK can ship without TypeBox. */
export const NDJSON = 'application/x-ndjson';
