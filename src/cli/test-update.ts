// `weir test --update`: write the rows endpoints answered into the test file's expect.rows, keeping
// everything else of the file (comments, order, the other cases) as it was. Pure: text in, text out.
import { isMap, isSeq, parseDocument, YAMLMap, type Document } from 'yaml';
import type { Row } from './test-cases.js';

/** A row as a one-line YAML mapping, as the format's examples write them: `- {pathname: /blog, views: "3"}`. */
function flowRow(doc: Document, row: Row) {
  const node = doc.createNode(row);
  if (isMap(node)) node.flow = true;
  return node;
}

/**
 * The file with expect.rows of the cases at `rows`' indexes set to those rows. A case without
 * an expect gets one; other fields of expect (status, rowCount) are kept, except a rowCount that
 * no longer matches, which is set to the new count.
 */
export function updateExpectedRows(text: string, rows: ReadonlyMap<number, Row[]>): string {
  const doc = parseDocument(text);
  if (!isSeq(doc.contents)) throw new Error('not a YAML list of test cases');
  for (const [index, answer] of rows) {
    const item = doc.contents.items[index];
    if (!isMap(item)) throw new Error(`case ${index + 1} is not a mapping`);
    const found: unknown = item.get('expect', true);
    let expect: YAMLMap;
    if (isMap(found)) expect = found;
    else {
      expect = new YAMLMap();
      (item as YAMLMap).set('expect', expect);
    }
    // A one-line `expect: {status: 200}` grows a list of rows: write it as a block.
    expect.flow = false;
    const rowsNode = expect.get('rows', true);
    // The list node itself is kept when there is one, and with it the comments around it.
    if (isSeq(rowsNode)) {
      rowsNode.items = answer.map((r) => flowRow(doc, r));
      rowsNode.flow = false;
    } else expect.set('rows', doc.createNode(answer.map((r) => flowRow(doc, r))));
    if (expect.has('rowCount')) expect.set('rowCount', answer.length);
  }
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}
