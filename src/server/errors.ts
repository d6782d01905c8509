/**
 * The one place where error codes become HTTP statuses: defined beside the closed union of codes
 * (src/errors/http-status.ts) so the AI gateway, which may not import the server, answers from the
 * same map.
 */
export { HTTP_STATUS } from '../errors/http-status.ts';
