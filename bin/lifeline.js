#!/usr/bin/env node
// The `lifeline` command. `npm ci` builds dist/ (the prepare script).
import '../dist/src/cli/main.js';
