# Windows: dist\Lucida-<version>-windows-x64-setup.exe (Inno Setup 6), then installed
# silently as a person would, checked with `lucida.exe --smoke-test`, and uninstalled.
# Runs on Windows with Python 3.11 and Inno Setup 6 (CI: .github/workflows/installers.yml,
# windows-2022, which has both); it cannot run on Linux.
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1 [-Python py] [-SkipInstallTest]
[CmdletBinding()]
param(
    [string]$Python = "python",
    [string]$Venv = "build\venv-windows",
    [string]$InstallDir = (Join-Path ([IO.Path]::GetTempPath()) "Lucida-install-test"),
    [switch]$SkipInstallTest
)
$ErrorActionPreference = "Stop"
Set-StrictMode -Version Latest
Set-Location (Resolve-Path (Join-Path $PSScriptRoot "..\.."))
$Repo = (Get-Location).Path

function Invoke-Native([string]$Exe, [string[]]$Arguments) {
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$Exe $($Arguments -join ' ') failed with exit code $LASTEXITCODE" }
}

# 1. A clean build environment with the `package` extra (PyInstaller, the SBOM tools).
$Py = Join-Path $Venv "Scripts\python.exe"
if (-not (Test-Path $Py)) { Invoke-Native $Python @("-m", "venv", $Venv) }
Invoke-Native $Py @("-m", "pip", "install", "-q", "--upgrade", "pip")
Invoke-Native $Py @("-m", "pip", "install", "-q", "-e", ".[package]")

# 2. The one-folder build and the same packaging tail as Linux
#    (packaging/linux/build_bundle.sh): build_info.json, SBOM, notices, README.
$Dist = Join-Path $Repo "dist\lucida"
if (Test-Path $Dist) { Remove-Item -Recurse -Force $Dist }
Invoke-Native $Py @("packaging\icons.py", "build\icons")
Invoke-Native $Py @("-m", "PyInstaller", "--noconfirm", "--log-level", "WARN", "--distpath", "dist",
    "--workpath", "build\pyinstaller", "packaging\lucida.spec")
Invoke-Native $Py @("packaging\bundle\build_info.py", "$Dist\_internal\build_info.json")
Invoke-Native $Py @("packaging\bundle\sbom.py", "--collected", "build\pyinstaller\lucida\collected.json",
    "--bundle", $Dist, "--out", "$Dist\lucida.cdx.json", "--notices", "$Dist\THIRD-PARTY-NOTICES.txt")
Copy-Item "packaging\linux\README.txt" "$Dist\README.txt"

# 3. The installer, versioned from build_info.json (one source of truth with --version).
$Info = Get-Content -Raw "$Dist\_internal\build_info.json" | ConvertFrom-Json
$Numeric = [regex]::Match($Info.version, '^\d+(\.\d+){0,3}').Value
$IsccOnPath = Get-Command iscc.exe -ErrorAction SilentlyContinue  # strict mode: no .Source of $null
$Iscc = if ($IsccOnPath) { $IsccOnPath.Source } else { Join-Path ${env:ProgramFiles(x86)} "Inno Setup 6\ISCC.exe" }
Invoke-Native $Iscc @("/Q", "/DAppVersion=$($Info.version)", "/DNumericVersion=$Numeric",
    "/DBuildId=$($Info.build_id)", "/DSourceDir=$Dist", "/DOutputDir=$Repo\dist",
    "/DIconFile=$Repo\build\icons\lucida.ico",
    "packaging\windows\lucida.iss")
$Setup = Join-Path $Repo "dist\Lucida-$($Info.version)-windows-x64-setup.exe"
Write-Host ("installer: {0} ({1:N0} MB)" -f $Setup, ((Get-Item $Setup).Length / 1MB))
if ($SkipInstallTest) { exit 0 }

# 4. Install silently (with the .dcm association), run the check on the installed copy.
$Log = Join-Path $Repo "dist\install-windows.log"
$p = Start-Process -Wait -PassThru $Setup -ArgumentList @("/VERYSILENT", "/SUPPRESSMSGBOXES",
    "/NORESTART", "/TASKS=dcmassoc", "/DIR=`"$InstallDir`"", "/LOG=`"$Log`"")
if ($p.ExitCode -ne 0) { throw "setup failed with exit code $($p.ExitCode); see $Log" }
$Exe = Join-Path $InstallDir "lucida.exe"
if (-not (Test-Path "Registry::HKEY_CLASSES_ROOT\Lucida.DICOM\shell\open\command")) {
    throw "the .dcm association was not registered"
}
Invoke-Native $Exe @("--version")
$Out = Join-Path $Repo "dist\smoke-windows"
$p = Start-Process -Wait -PassThru -NoNewWindow $Exe -ArgumentList @("--smoke-test", "--smoke-out", "`"$Out`"")
if ($p.ExitCode -ne 0) { throw "lucida --smoke-test failed ($($p.ExitCode)); see $Out\smoke.json" }

# 5. Uninstall: the program folder and the association go (the uninstaller hands over to a
#    copy of itself, so wait for the folder rather than the process).
$p = Start-Process -Wait -PassThru (Join-Path $InstallDir "unins000.exe") -ArgumentList @("/VERYSILENT",
    "/SUPPRESSMSGBOXES", "/NORESTART")
if ($p.ExitCode -ne 0) { throw "uninstall failed with exit code $($p.ExitCode)" }
$deadline = (Get-Date).AddSeconds(120)
while ((Test-Path $Exe) -and (Get-Date) -lt $deadline) { Start-Sleep -Seconds 2 }
if (Test-Path $Exe) { throw "the uninstaller left $Exe" }
if (Test-Path "Registry::HKEY_CLASSES_ROOT\Lucida.DICOM") { throw "the uninstaller left the .dcm association" }
Write-Host "Windows installer: built, installed, smoke-tested and uninstalled: $Setup"
