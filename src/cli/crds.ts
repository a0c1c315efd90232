import { renderCustomResourceDefinitions } from '../api/crd-files.js';

export function runCrds(): void {
  process.stdout.write(
    renderCustomResourceDefinitions()
      .map(([, text]) => text)
      .join('---\n'),
  );
}
