// `${NAME}` placeholders in example files, filled from a map; a missing name is an error.
export function renderTemplate(text: string, vars: Record<string, string | undefined>): string {
  const missing = new Set<string>();
  const out = text.replace(/\$\{([A-Z0-9_]+)\}/g, (_, name: string) => {
    const v = vars[name];
    if (v === undefined) missing.add(name);
    return v ?? '';
  });
  if (missing.size) throw new Error(`no value for ${[...missing].join(', ')}`);
  return out;
}
