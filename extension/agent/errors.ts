// API failures in plain words, with the action that fixes them.
import Anthropic from '@anthropic-ai/sdk';

export interface Explained {
  readonly message: string;
  readonly action?: string;
}

import { SET_KEY_ACTION } from './actions';

export function explainApiError(err: unknown): Explained {
  if (err instanceof Anthropic.AuthenticationError) return { message: 'The API key was rejected (401).', action: SET_KEY_ACTION };
  if (err instanceof Anthropic.PermissionDeniedError) return { message: 'This API key may not use this model or feature (403).', action: 'Check the key\'s permissions or choose another model in cowork.model.' };
  if (err instanceof Anthropic.NotFoundError) return { message: `The API answered 404: ${err.message}`, action: 'Check cowork.model and cowork.apiBaseUrl.' };
  if (err instanceof Anthropic.RateLimitError) return { message: 'The API kept answering "rate limited" (429) after several retries.', action: 'Wait a minute and continue the task.' };
  if (err instanceof Anthropic.BadRequestError) return { message: `The API refused the request (400): ${err.message}` };
  if (err instanceof Anthropic.InternalServerError) return { message: `The API failed (${err.status}) after several retries: ${err.message}`, action: 'Continue the task to try again.' };
  if (err instanceof Anthropic.APIConnectionError) return { message: `Cannot reach the API: ${err.message}`, action: 'Check your network, proxy settings or cowork.apiBaseUrl, then continue the task.' };
  if (err instanceof Anthropic.APIError) return { message: `The API answered ${err.status ?? 'with an error'}: ${err.message}` };
  // The response had started and its connection broke (undici says "terminated"): the SDK does not
  // retry a stream it already handed over. Nothing of the half reply is kept, so the conversation
  // stays valid and a follow-up asks again.
  if (isDroppedStream(err)) return { message: `The connection to the API dropped in the middle of the reply (${describe(err)}). The partial reply was not kept; nothing else was lost.`, action: 'Continue the task (send a follow-up) to ask again.' };
  return { message: err instanceof Error ? err.message : String(err) };
}

function describe(err: unknown): string {
  const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err instanceof Error ? err.message : String(err)}${cause}`;
}

function isDroppedStream(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const text = `${err.message} ${err.cause instanceof Error ? `${err.cause.message} ${(err.cause as NodeJS.ErrnoException).code ?? ''}` : ''}`;
  return /\bterminated\b|other side closed|socket hang up|ECONNRESET|premature close|EPIPE|UND_ERR_SOCKET/i.test(text);
}
