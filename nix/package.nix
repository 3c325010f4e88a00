{
  lib,
  stdenv,
  rustPlatform,
  installShellFiles,
  coreutils,
}:

let
  manifest = (lib.importTOML ../Cargo.toml).package;
in
rustPlatform.buildRustPackage {
  pname = manifest.name;
  inherit (manifest) version;

  # Only what the build reads, so that editing the docs or the test suites
  # does not rebuild srvd.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      ../packaging/systemd
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  nativeBuildInputs = [ installShellFiles ];

  # The unit tests only: they need no network, no sockets and no services.
  # The integration and system suites start daemons and DNS servers, which
  # the build sandbox has not.
  cargoTestFlags = [ "--lib" ];

  postInstall =
    # The man page and completions come from the binary's own clap
    # definition, so they can only be made where it runs.
    lib.optionalString (stdenv.buildPlatform.canExecute stdenv.hostPlatform) ''
      $out/bin/srvd generate --man generated/man --completions generated/completions
      installManPage generated/man/*.8
      installShellCompletion --cmd srvd \
        --bash generated/completions/srvd.bash \
        --zsh generated/completions/_srvd \
        --fish generated/completions/srvd.fish
    ''
    + ''
      for unit in packaging/systemd/*; do
        install -Dm644 "$unit" -t $out/lib/systemd/system
      done
      for unit in $out/lib/systemd/system/*.service; do
        substituteInPlace "$unit" \
          --replace-fail /usr/bin/srvd $out/bin/srvd \
          --replace-fail /bin/kill ${coreutils}/bin/kill
      done
    '';

  meta = {
    description = manifest.description;
    longDescription = ''
      srvd polls DNS SRV records (or a zone file), renders each configured
      Tera template with them, validates the result with the template's
      check command, replaces the destination file atomically and runs the
      reload command, only when the output really changed and never with a
      broken or empty config.
    '';
    license = with lib.licenses; [
      mit
      asl20
    ];
    mainProgram = "srvd";
    platforms = lib.platforms.linux;
  };
}
