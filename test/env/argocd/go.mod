// Runs Argo CD health checks (Lua) with the interpreter Argo CD embeds, for weir's install tests.
module weir.dev/testenv/argocd

go 1.24.0

require github.com/yuin/gopher-lua v1.1.1
