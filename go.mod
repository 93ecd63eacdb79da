module github.com/teleport-fluent-bit/teleport-fluent-bit

go 1.26.0

require (
	github.com/beevik/etree v1.3.0 // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/coreos/go-semver v0.3.1 // indirect
	github.com/distribution/reference v0.5.0 // indirect
	github.com/docker/go-connections v0.4.0 // indirect
	github.com/docker/go-units v0.5.0 // indirect
	github.com/felixge/httpsnoop v1.0.4 // indirect
	github.com/go-logr/logr v1.4.2 // indirect
	github.com/go-logr/stdr v1.2.2 // indirect
	github.com/go-piv/piv-go v1.11.0 // indirect
	github.com/go-viper/mapstructure/v2 v2.4.0 // indirect
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/gobwas/pool v0.2.1 // indirect
	github.com/gobwas/ws v1.4.0 // indirect
	github.com/gogo/protobuf v1.3.2 // indirect
	github.com/grpc-ecosystem/grpc-gateway/v2 v2.25.1 // indirect
	github.com/jonboulle/clockwork v0.5.0 // indirect
	github.com/klauspost/compress v1.17.9 // indirect
	github.com/mattermost/xml-roundtrip-validator v0.1.0 // indirect
	github.com/mattn/go-shellwords v1.0.12 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/philhofer/fwd v1.2.0 // indirect
	github.com/prometheus/common v0.55.0 // indirect
	github.com/prometheus/procfs v0.15.1 // indirect
	github.com/russellhaering/gosaml2 v0.9.1 // indirect
	github.com/russellhaering/goxmldsig v1.4.0 // indirect
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.1 // indirect
	github.com/sirupsen/logrus v1.10.1 // indirect
	github.com/ugorji/go/codec v1.1.7 // indirect
	github.com/xhit/go-str2duration/v2 v2.1.0 // indirect
	go.opentelemetry.io/auto/sdk v1.1.0 // indirect
	go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc v0.58.0 // indirect
	go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp v0.58.0 // indirect
	go.opentelemetry.io/otel v1.33.0 // indirect
	go.opentelemetry.io/otel/exporters/otlp/otlptrace v1.33.0 // indirect
	go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc v1.33.0 // indirect
	go.opentelemetry.io/otel/metric v1.33.0 // indirect
	go.opentelemetry.io/otel/sdk v1.33.0 // indirect
	go.opentelemetry.io/otel/trace v1.33.0 // indirect
	go.opentelemetry.io/proto/otlp v1.5.0 // indirect
	go.yaml.in/yaml/v4 v4.0.0-rc.4 // indirect
	golang.org/x/exp v0.0.0-20250106191152-7588d65b2ba8 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/term v0.47.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/genproto/googleapis/api v0.0.0-20250102185135-69823020774d // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20250102185135-69823020774d // indirect
	gopkg.in/yaml.v2 v2.4.0 // indirect
)

require (
	github.com/cenkalti/backoff/v4 v4.3.0 // retry backoff toward the Auth Service
	github.com/compose-spec/compose-go/v2 v2.16.2 // tests only (deploy/): docker-compose.yml loaded and validated like `docker compose config`, without a Docker engine
	github.com/fluent/fluent-bit-go v0.0.0-20230731091245-a7a013e2473c // Fluent Bit's Go plugin ABI: registration, properties
	github.com/google/uuid v1.6.0 // test stand-in: deterministic event uids
	github.com/gravitational/teleport/api v0.0.0-20250128104452-ecabf6b767ac // the official Teleport client: credentials, gRPC, audit log API
	github.com/gravitational/trace v1.4.0 // Teleport's error kinds (NotImplemented)
	github.com/pelletier/go-toml/v2 v2.4.3 // teleport-event-handler.toml files
	github.com/prometheus/client_golang v1.20.5 // the opt-in metrics endpoint
	github.com/prometheus/client_model v0.6.1 // metric families of inputs sharing one endpoint
	github.com/stretchr/testify v1.12.1 // tests
	github.com/tinylib/msgp v1.6.5 // allocation-free msgpack records
	github.com/youmark/pkcs8 v0.0.0-20240726163527-a2c0da244d78 // configure: server.key as encrypted PKCS#8 (PBES2/AES-256) for Fluentd; the stdlib only has the deprecated, insecure legacy PEM encryption (x509.EncryptPEMBlock)
	go.yaml.in/yaml/v3 v3.0.5 // tests only: generated and example YAML parsed with known fields
	golang.org/x/crypto v0.58.0 // test stand-in: SSH certificates in identity files
	golang.org/x/sys v0.49.0 // flock on storage_dir
	google.golang.org/grpc v1.69.2 // the transport of the Teleport API
	google.golang.org/protobuf v1.36.4 // structpb events from the Teleport API
)
