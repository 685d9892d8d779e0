// Small DOM helpers shared by the panel's views.

export function el<K extends keyof HTMLElementTagNameMap>(tagName: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tagName);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Buttons inside a <summary> must not also open or close its <details>. */
export function inert(...children: HTMLElement[]): HTMLElement {
  const span = el('span', 'actions');
  span.append(...children);
  span.addEventListener('click', (e) => e.preventDefault());
  return span;
}

export function age(ms: number): string {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.round(s / 60)}m` : s < 86400 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86400)}d`;
}

export function bytes(n: number): string {
  return n < 1024 * 1024 ? `${Math.round(n / 1024)} KiB` : n < 1024 ** 3 ? `${(n / 1024 / 1024).toFixed(0)} MiB` : `${(n / 1024 ** 3).toFixed(1)} GiB`;
}
