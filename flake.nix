{
  description = "srvd: config files from DNS SRV records, checked, swapped in atomically and reloaded";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      # srvd speaks systemd's protocols and uses Linux-only calls.
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: rec {
        srvd = pkgs.callPackage ./nix/package.nix { };
        default = srvd;
      });

      overlays.default = final: prev: {
        srvd = final.callPackage ./nix/package.nix { };
      };

      # Runs pkgs.srvd when an overlay provides it, else builds srvd from this
      # flake's source with the system's nixpkgs.
      nixosModules.default = ./nix/module.nix;

      checks = forAllSystems (pkgs: {
        package = self.packages.${pkgs.stdenv.hostPlatform.system}.srvd;
        vm = pkgs.testers.runNixOSTest (import ./nix/tests/vm.nix { module = self.nixosModules.default; });
      });
    };
}
