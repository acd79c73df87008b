// Types of the acme-client files that src/acme/acme-client.ts imports one by
// one. Each is a CommonJS module whose module.exports is the export of the
// same name in the package's index, so its types are those.
declare module 'acme-client/src/client.js' {
  import { Client } from 'acme-client';
  export = Client;
}

declare module 'acme-client/src/axios.js' {
  import { axios } from 'acme-client';
  export = axios;
}

declare module 'acme-client/src/crypto/index.js' {
  import { crypto } from 'acme-client';
  export = crypto;
}
