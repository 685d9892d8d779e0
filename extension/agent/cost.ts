// Estimated cost of a task from its token counts. Prices are USD per million tokens as published by
// Anthropic for each model family; an unknown model is priced like the most expensive family, so
// the estimate errs high. Cache writes cost 1.25× input, cache reads 0.1× input.
import type { Usage } from './transcript';

interface Price {
  readonly input: number;
  readonly output: number;
}

const FAMILIES: [RegExp, Price][] = [
  [/opus/, { input: 15, output: 75 }],
  [/sonnet/, { input: 3, output: 15 }],
  [/haiku/, { input: 1, output: 5 }],
];
const FALLBACK: Price = { input: 15, output: 75 };

export function priceFor(model: string): Price {
  return FAMILIES.find(([re]) => re.test(model))?.[1] ?? FALLBACK;
}

export function costUsd(model: string, u: Usage): number {
  const p = priceFor(model);
  return (u.input * p.input + u.cacheWrite * p.input * 1.25 + u.cacheRead * p.input * 0.1 + u.output * p.output) / 1_000_000;
}
