// The script of graphql-aggregator's GraphiQL page (README, "GraphiQL"):
// GraphiQL 5, React and React DOM in one ES module, so that any static host
// serves them (GraphiQL 5 and React 19 ship no browser bundle of their
// own). Built by envoy/e2e/tests/graphiql.rs, or by hand, into the folder
// that `graphiql.assets_url` names:
//
//   npx esbuild graphiql-bundle.mjs --bundle --format=esm --minify \
//     --loader:.ttf=file --asset-names=[name] \
//     --define:process.env.NODE_ENV='"production"' --outfile=DIR/graphiql.mjs
//   npx esbuild --bundle --format=iife --minify --outdir=DIR \
//     --entry-names=[name] \
//     monaco-editor/esm/vs/editor/editor.worker.js \
//     monaco-editor/esm/vs/language/json/json.worker.js \
//     monaco-graphql/esm/graphql.worker.js
//
// DIR then holds graphiql.mjs, graphiql.css, codicon.ttf and the editor's
// three workers (editor.worker.js, json.worker.js, graphql.worker.js).
import 'graphiql/style.css';
export { GraphiQL } from 'graphiql';
export { createElement } from 'react';
export { createRoot } from 'react-dom/client';

// The editor's workers, from the same folder. A page may not start a
// worker from another origin, so each starts from a blob that loads it.
const folder = new URL('.', import.meta.url);
globalThis.MonacoEnvironment = {
  getWorker(_id, label) {
    const name = label === 'json' || label === 'graphql' ? label : 'editor';
    const script = new URL(`${name}.worker.js`, folder).href;
    const loader = new Blob([`importScripts(${JSON.stringify(script)});`], {
      type: 'text/javascript',
    });
    return new Worker(URL.createObjectURL(loader), { name: `${name} worker` });
  },
};
