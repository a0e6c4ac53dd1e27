; Lucida for Windows: Inno Setup 6 script for the PyInstaller one-folder build (dist\lucida).
; packaging\windows\build.ps1 compiles it, passing what build_info.json says:
;   iscc /DAppVersion=0.1.0 /DNumericVersion=0.1.0 /DBuildId=202612052330-abc1234
;        /DSourceDir=<repo>\dist\lucida /DOutputDir=<repo>\dist packaging\windows\lucida.iss
; Research use only - not for diagnostic use: README.txt says so before installing.

#ifndef AppVersion
  #error Pass /DAppVersion=... (build.ps1 reads it from build_info.json)
#endif
; The file version resource takes numbers only (build.ps1 passes 0.2.0 for 0.2.0rc1).
#ifndef NumericVersion
  #define NumericVersion AppVersion
#endif
#ifndef BuildId
  #define BuildId "unknown"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\lucida"
#endif
#ifndef OutputDir
  #define OutputDir "..\..\dist"
#endif
; Drawn by packaging\icons.py from the Linux icon (the .exe keeps PyInstaller's own).
#ifndef IconFile
  #define IconFile "..\..\build\icons\lucida.ico"
#endif
#define AppExe "lucida.exe"
#define DicomProgId "Lucida.DICOM"

[Setup]
; The AppId ties upgrades and the uninstaller together: never change it.
AppId={{6B0E3F0A-8B1C-4E5D-9C55-3F1A2D7E9B41}
AppName=Lucida
AppVersion={#AppVersion}
AppVerName=Lucida {#AppVersion} (build {#BuildId})
AppPublisher=Lucida developers
AppComments=Offline medical image viewer with local AI assist. Research use only - not for diagnostic use.
VersionInfoVersion={#NumericVersion}
VersionInfoProductTextVersion={#AppVersion} (build {#BuildId})
DefaultDirName={autopf}\Lucida
DefaultGroupName=Lucida
DisableProgramGroupPage=yes
InfoBeforeFile={#SourceDir}\README.txt
OutputDir={#OutputDir}
OutputBaseFilename=Lucida-{#AppVersion}-windows-x64-setup
Compression=lzma2/ultra64
SolidCompression=yes
LZMAUseSeparateProcess=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
; Per machine by default; /CURRENTUSER (or the dialog) installs without admin rights.
PrivilegesRequired=admin
PrivilegesRequiredOverridesAllowed=dialog commandline
ChangesAssociations=yes
SetupIconFile={#IconFile}
UninstallDisplayIcon={app}\lucida.ico
UninstallDisplayName=Lucida {#AppVersion}
WizardStyle=modern
SetupLogging=yes

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "dcmassoc"; Description: "Offer Lucida to open .dcm files"; GroupDescription: "File associations:"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs
Source: "{#IconFile}"; DestDir: "{app}"; DestName: "lucida.ico"; Flags: ignoreversion

[Icons]
Name: "{group}\Lucida"; Filename: "{app}\{#AppExe}"; IconFilename: "{app}\lucida.ico"; Comment: "Offline medical image viewer (research use only)"
Name: "{group}\Lucida installation check"; Filename: "{app}\{#AppExe}"; Parameters: "--smoke-test"; IconFilename: "{app}\lucida.ico"
Name: "{group}\Third-party notices"; Filename: "{app}\THIRD-PARTY-NOTICES.txt"
Name: "{group}\{cm:UninstallProgram,Lucida}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\Lucida"; Filename: "{app}\{#AppExe}"; IconFilename: "{app}\lucida.ico"; Tasks: desktopicon

[Registry]
; .dcm (task dcmassoc): a ProgID listed in OpenWithProgids, so Lucida is offered in
; "Open with" without taking the default away from another viewer; removed on uninstall.
Root: HKA; Subkey: "Software\Classes\.dcm\OpenWithProgids"; ValueType: string; ValueName: "{#DicomProgId}"; ValueData: ""; Flags: uninsdeletevalue; Tasks: dcmassoc
Root: HKA; Subkey: "Software\Classes\{#DicomProgId}"; ValueType: string; ValueName: ""; ValueData: "DICOM image"; Flags: uninsdeletekey; Tasks: dcmassoc
Root: HKA; Subkey: "Software\Classes\{#DicomProgId}\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\lucida.ico"; Tasks: dcmassoc
Root: HKA; Subkey: "Software\Classes\{#DicomProgId}\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#AppExe}"" ""%1"""; Tasks: dcmassoc
Root: HKA; Subkey: "Software\Classes\Applications\{#AppExe}\SupportedTypes"; ValueType: string; ValueName: ".dcm"; ValueData: ""; Flags: uninsdeletekey; Tasks: dcmassoc

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,Lucida}"; Flags: nowait postinstall skipifsilent

; No [UninstallDelete]: the library and settings under %LOCALAPPDATA% are the user's and stay.
