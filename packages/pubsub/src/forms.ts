/**
 * XEP-0004 data forms, just what pub/sub needs: build a `submit` form, read any form's fields.
 * Values are kept as strings (the wire form); typed mapping lives in node-config.ts.
 */
import { childElements, findChild, localName, textOf, xml, type Element } from '@xmppbus/core';
import { NS_DATA } from './ns.js';

/** A form field value on the wire: one string, or several for `*-multi` fields. */
export type FieldValue = string | readonly string[];

export interface FormField {
  var: string;
  type: string | undefined;
  label: string | undefined;
  values: string[];
  /** `<option>` values offered by the server (list-single/list-multi). */
  options: string[];
}

export interface DataForm {
  type: string;
  formType: string | undefined;
  fields: Map<string, FormField>;
}

/** Builds `<x xmlns='jabber:x:data' type='submit'>` with a hidden FORM_TYPE. */
export function submitForm(formType: string, fields: ReadonlyMap<string, FieldValue>): Element {
  const x = xml('x', { xmlns: NS_DATA, type: 'submit' });
  x.cnode(xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', null, formType)));
  for (const [name, value] of fields) {
    const f = xml('field', { var: name });
    if (typeof value === 'string') f.cnode(xml('value', null, value));
    else for (const v of value) f.cnode(xml('value', null, v));
    x.cnode(f);
  }
  return x;
}

/** Parses a data form (any type). */
export function parseForm(x: Element): DataForm {
  const fields = new Map<string, FormField>();
  let formType: string | undefined;
  for (const f of childElements(x)) {
    if (localName(f) !== 'field') continue;
    const name = f.attrs['var'];
    if (typeof name !== 'string') continue;
    const values: string[] = [];
    const options: string[] = [];
    for (const c of childElements(f)) {
      const ln = localName(c);
      if (ln === 'value') values.push(textOf(c));
      else if (ln === 'option') {
        const v = findChild(c, 'value');
        if (v) options.push(textOf(v));
      }
    }
    if (name === 'FORM_TYPE') formType = values[0];
    fields.set(name, { var: name, type: f.attrs['type'], label: f.attrs['label'], values, options });
  }
  return { type: x.attrs['type'] ?? 'form', formType, fields };
}

/** Finds the data form child of `el` (by local name and namespace). */
export function findForm(el: Element | undefined): Element | undefined {
  if (!el) return undefined;
  for (const c of childElements(el)) if (localName(c) === 'x' && c.attrs['xmlns'] === NS_DATA) return c;
  return undefined;
}
