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
  return { message: err instanceof Error ? err.message : String(err) };
}
