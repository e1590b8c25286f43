/**
 * The paths of keys that occur twice in one JSON object (`spec.replicas`,
 * `spec.template.spec.containers[0].image`). JSON.parse keeps the last one
 * silently; kube-apiserver reports them as `duplicate field "…"` under
 * fieldValidation. Expects text JSON.parse has already accepted.
 */
export function duplicateJsonKeys(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  const ws = (): void => {
    while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  };
  const str = (): string => {
    const start = i;
    i++; // opening quote
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (path: string): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const seen = new Set<string>();
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        const key = str();
        const child = path === '' ? key : `${path}.${key}`;
        if (seen.has(key)) out.push(child);
        seen.add(key);
        ws();
        i++; // colon
        value(child);
        ws();
        if (text[i++] === '}') return;
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (let n = 0; ; n++) {
        value(`${path}[${n}]`);
        ws();
        if (text[i++] === ']') return;
      }
    }
    if (c === '"') return void str();
    while (i < text.length && !',]} \t\r\n'.includes(text[i]!)) i++;
  };
  value('');
  return out;
}
