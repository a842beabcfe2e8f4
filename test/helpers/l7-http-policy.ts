// The policy the HTTP handler tests judge with: one rule per layer7.http field, prevent and detect.
export const HTTP_POLICY = `version: 1
mode: prevent
attach: { cgroup: / }
defaults: { ingress: block, egress: allow }
rules:
  - name: no-admin
    direction: egress
    action: block
    layer7: { http: { path: ["/admin", "/admin/*"] } }
  - name: no-delete
    direction: egress
    action: block
    layer7: { http: { method: [DELETE] } }
  - name: no-evil-host
    direction: egress
    action: block
    layer7: { http: { host: ["*.evil.example"], trust_host: true } }
  - name: no-bot
    direction: egress
    action: block
    layer7: { http: { headers: { user-agent: "badbot*" } } }
  - name: no-http10
    direction: egress
    action: block
    layer7: { http: { version: ["1.0"] } }
  - name: no-h2-secret
    direction: egress
    action: block
    layer7: { http: { version: ["2"], path: ["/secret"] } }
  - name: watch-uploads
    direction: egress
    action: block
    mode: detect
    layer7: { http: { path: ["/upload/*"] } }
  - name: no-tunnel-to-intranet
    direction: egress
    action: block
    layer7: { http: { method: [CONNECT], host: ["intranet.example"], trust_host: true } }
  - name: no-ws-chat
    direction: egress
    action: block
    layer7: { http: { path: ["/chat"], headers: { upgrade: websocket } } }
`;
