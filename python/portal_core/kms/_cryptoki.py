"""The PKCS#11 (Cryptoki) C declarations the KMS calls past python-pkcs11, for cffi.

python-pkcs11 covers almost everything the KMS does. Three things it cannot do: initialise a
module with ``CK_C_INITIALIZE_ARGS`` (``_module``), ask a session whether it is still logged
in (``C_GetSessionInfo``, ``_module``), and pass a ``CK_GCM_PARAMS`` whose IV buffer the HSM may
write into (``mechanisms``). For those, this module declares the types and the function list
exactly as the PKCS#11 v2.40 headers (``pkcs11t.h``, ``pkcs11f.h``) write them, with the
``CK_PTR`` and ``CK_DECLARE_FUNCTION_POINTER`` macros expanded for the Unix ABIs (no
structure packing; ``CK_ULONG`` is ``unsigned long``). cffi works in ABI mode: no compiler,
the library is opened with ``ffi.dlopen`` at run time.

Nothing here imports python-pkcs11.
"""

from __future__ import annotations

from cffi import FFI

__all__ = [
    "CKF_OS_LOCKING_OK",
    "CKR_CANT_LOCK",
    "CKR_CRYPTOKI_NOT_INITIALIZED",
    "CKR_OK",
    "CKS_RO_USER_FUNCTIONS",
    "CKS_RW_USER_FUNCTIONS",
    "ffi",
]

# pkcs11t.h constants this package uses.
CKR_OK = 0x00000000
CKR_CANT_LOCK = 0x0000000A
CKR_CRYPTOKI_NOT_INITIALIZED = 0x00000190
CKF_OS_LOCKING_OK = 0x00000002
CKS_RO_USER_FUNCTIONS = 1
CKS_RW_USER_FUNCTIONS = 3

_DECLARATIONS = """
typedef unsigned char     CK_BYTE;
typedef CK_BYTE           CK_CHAR;
typedef CK_BYTE           CK_UTF8CHAR;
typedef CK_BYTE           CK_BBOOL;
typedef unsigned long int CK_ULONG;
typedef long int          CK_LONG;
typedef CK_ULONG          CK_FLAGS;

typedef CK_BYTE     * CK_BYTE_PTR;
typedef CK_CHAR     * CK_CHAR_PTR;
typedef CK_UTF8CHAR * CK_UTF8CHAR_PTR;
typedef CK_ULONG    * CK_ULONG_PTR;
typedef void        * CK_VOID_PTR;
typedef CK_VOID_PTR * CK_VOID_PTR_PTR;

typedef struct CK_VERSION {
  CK_BYTE major;
  CK_BYTE minor;
} CK_VERSION;
typedef CK_VERSION * CK_VERSION_PTR;

typedef struct CK_INFO {
  CK_VERSION  cryptokiVersion;
  CK_UTF8CHAR manufacturerID[32];
  CK_FLAGS    flags;
  CK_UTF8CHAR libraryDescription[32];
  CK_VERSION  libraryVersion;
} CK_INFO;
typedef CK_INFO * CK_INFO_PTR;

typedef CK_ULONG CK_NOTIFICATION;
typedef CK_ULONG CK_SLOT_ID;
typedef CK_SLOT_ID * CK_SLOT_ID_PTR;

typedef struct CK_SLOT_INFO {
  CK_UTF8CHAR slotDescription[64];
  CK_UTF8CHAR manufacturerID[32];
  CK_FLAGS    flags;
  CK_VERSION  hardwareVersion;
  CK_VERSION  firmwareVersion;
} CK_SLOT_INFO;
typedef CK_SLOT_INFO * CK_SLOT_INFO_PTR;

typedef struct CK_TOKEN_INFO {
  CK_UTF8CHAR label[32];
  CK_UTF8CHAR manufacturerID[32];
  CK_UTF8CHAR model[16];
  CK_CHAR     serialNumber[16];
  CK_FLAGS    flags;
  CK_ULONG    ulMaxSessionCount;
  CK_ULONG    ulSessionCount;
  CK_ULONG    ulMaxRwSessionCount;
  CK_ULONG    ulRwSessionCount;
  CK_ULONG    ulMaxPinLen;
  CK_ULONG    ulMinPinLen;
  CK_ULONG    ulTotalPublicMemory;
  CK_ULONG    ulFreePublicMemory;
  CK_ULONG    ulTotalPrivateMemory;
  CK_ULONG    ulFreePrivateMemory;
  CK_VERSION  hardwareVersion;
  CK_VERSION  firmwareVersion;
  CK_CHAR     utcTime[16];
} CK_TOKEN_INFO;
typedef CK_TOKEN_INFO * CK_TOKEN_INFO_PTR;

typedef CK_ULONG CK_SESSION_HANDLE;
typedef CK_SESSION_HANDLE * CK_SESSION_HANDLE_PTR;
typedef CK_ULONG CK_USER_TYPE;
typedef CK_ULONG CK_STATE;

typedef struct CK_SESSION_INFO {
  CK_SLOT_ID slotID;
  CK_STATE   state;
  CK_FLAGS   flags;
  CK_ULONG   ulDeviceError;
} CK_SESSION_INFO;
typedef CK_SESSION_INFO * CK_SESSION_INFO_PTR;

typedef CK_ULONG CK_OBJECT_HANDLE;
typedef CK_OBJECT_HANDLE * CK_OBJECT_HANDLE_PTR;
typedef CK_ULONG CK_ATTRIBUTE_TYPE;

typedef struct CK_ATTRIBUTE {
  CK_ATTRIBUTE_TYPE type;
  CK_VOID_PTR       pValue;
  CK_ULONG          ulValueLen;
} CK_ATTRIBUTE;
typedef CK_ATTRIBUTE * CK_ATTRIBUTE_PTR;

typedef CK_ULONG CK_MECHANISM_TYPE;
typedef CK_MECHANISM_TYPE * CK_MECHANISM_TYPE_PTR;

typedef struct CK_MECHANISM {
  CK_MECHANISM_TYPE mechanism;
  CK_VOID_PTR       pParameter;
  CK_ULONG          ulParameterLen;
} CK_MECHANISM;
typedef CK_MECHANISM * CK_MECHANISM_PTR;

typedef struct CK_MECHANISM_INFO {
  CK_ULONG ulMinKeySize;
  CK_ULONG ulMaxKeySize;
  CK_FLAGS flags;
} CK_MECHANISM_INFO;
typedef CK_MECHANISM_INFO * CK_MECHANISM_INFO_PTR;

typedef struct CK_GCM_PARAMS {
  CK_BYTE_PTR pIv;
  CK_ULONG    ulIvLen;
  CK_ULONG    ulIvBits;
  CK_BYTE_PTR pAAD;
  CK_ULONG    ulAADLen;
  CK_ULONG    ulTagBits;
} CK_GCM_PARAMS;
typedef CK_GCM_PARAMS * CK_GCM_PARAMS_PTR;

typedef CK_ULONG CK_RV;

typedef CK_RV (* CK_NOTIFY)(CK_SESSION_HANDLE hSession, CK_NOTIFICATION event,
                            CK_VOID_PTR pApplication);

typedef CK_RV (* CK_CREATEMUTEX)(CK_VOID_PTR_PTR ppMutex);
typedef CK_RV (* CK_DESTROYMUTEX)(CK_VOID_PTR pMutex);
typedef CK_RV (* CK_LOCKMUTEX)(CK_VOID_PTR pMutex);
typedef CK_RV (* CK_UNLOCKMUTEX)(CK_VOID_PTR pMutex);

typedef struct CK_C_INITIALIZE_ARGS {
  CK_CREATEMUTEX  CreateMutex;
  CK_DESTROYMUTEX DestroyMutex;
  CK_LOCKMUTEX    LockMutex;
  CK_UNLOCKMUTEX  UnlockMutex;
  CK_FLAGS        flags;
  CK_VOID_PTR     pReserved;
} CK_C_INITIALIZE_ARGS;
typedef CK_C_INITIALIZE_ARGS * CK_C_INITIALIZE_ARGS_PTR;

typedef struct CK_FUNCTION_LIST CK_FUNCTION_LIST;
typedef CK_FUNCTION_LIST * CK_FUNCTION_LIST_PTR;
typedef CK_FUNCTION_LIST_PTR * CK_FUNCTION_LIST_PTR_PTR;

struct CK_FUNCTION_LIST {
  CK_VERSION version;
  CK_RV (* C_Initialize)(CK_VOID_PTR pInitArgs);
  CK_RV (* C_Finalize)(CK_VOID_PTR pReserved);
  CK_RV (* C_GetInfo)(CK_INFO_PTR pInfo);
  CK_RV (* C_GetFunctionList)(CK_FUNCTION_LIST_PTR_PTR ppFunctionList);
  CK_RV (* C_GetSlotList)(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList,
                          CK_ULONG_PTR pulCount);
  CK_RV (* C_GetSlotInfo)(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo);
  CK_RV (* C_GetTokenInfo)(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo);
  CK_RV (* C_GetMechanismList)(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList,
                               CK_ULONG_PTR pulCount);
  CK_RV (* C_GetMechanismInfo)(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type,
                               CK_MECHANISM_INFO_PTR pInfo);
  CK_RV (* C_InitToken)(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen,
                        CK_UTF8CHAR_PTR pLabel);
  CK_RV (* C_InitPIN)(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen);
  CK_RV (* C_SetPIN)(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin, CK_ULONG ulOldLen,
                     CK_UTF8CHAR_PTR pNewPin, CK_ULONG ulNewLen);
  CK_RV (* C_OpenSession)(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication,
                          CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession);
  CK_RV (* C_CloseSession)(CK_SESSION_HANDLE hSession);
  CK_RV (* C_CloseAllSessions)(CK_SLOT_ID slotID);
  CK_RV (* C_GetSessionInfo)(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo);
  CK_RV (* C_GetOperationState)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState,
                                CK_ULONG_PTR pulOperationStateLen);
  CK_RV (* C_SetOperationState)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState,
                                CK_ULONG ulOperationStateLen,
                                CK_OBJECT_HANDLE hEncryptionKey,
                                CK_OBJECT_HANDLE hAuthenticationKey);
  CK_RV (* C_Login)(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin,
                    CK_ULONG ulPinLen);
  CK_RV (* C_Logout)(CK_SESSION_HANDLE hSession);
  CK_RV (* C_CreateObject)(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
                           CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phObject);
  CK_RV (* C_CopyObject)(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                         CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                         CK_OBJECT_HANDLE_PTR phNewObject);
  CK_RV (* C_DestroyObject)(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject);
  CK_RV (* C_GetObjectSize)(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                            CK_ULONG_PTR pulSize);
  CK_RV (* C_GetAttributeValue)(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                                CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount);
  CK_RV (* C_SetAttributeValue)(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                                CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount);
  CK_RV (* C_FindObjectsInit)(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
                              CK_ULONG ulCount);
  CK_RV (* C_FindObjects)(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject,
                          CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount);
  CK_RV (* C_FindObjectsFinal)(CK_SESSION_HANDLE hSession);
  CK_RV (* C_EncryptInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                          CK_OBJECT_HANDLE hKey);
  CK_RV (* C_Encrypt)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                      CK_BYTE_PTR pEncryptedData, CK_ULONG_PTR pulEncryptedDataLen);
  CK_RV (* C_EncryptUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen,
                            CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen);
  CK_RV (* C_EncryptFinal)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastEncryptedPart,
                           CK_ULONG_PTR pulLastEncryptedPartLen);
  CK_RV (* C_DecryptInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                          CK_OBJECT_HANDLE hKey);
  CK_RV (* C_Decrypt)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedData,
                      CK_ULONG ulEncryptedDataLen, CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen);
  CK_RV (* C_DecryptUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart,
                            CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart,
                            CK_ULONG_PTR pulPartLen);
  CK_RV (* C_DecryptFinal)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastPart,
                           CK_ULONG_PTR pulLastPartLen);
  CK_RV (* C_DigestInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism);
  CK_RV (* C_Digest)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                     CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen);
  CK_RV (* C_DigestUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen);
  CK_RV (* C_DigestKey)(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hKey);
  CK_RV (* C_DigestFinal)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pDigest,
                          CK_ULONG_PTR pulDigestLen);
  CK_RV (* C_SignInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                       CK_OBJECT_HANDLE hKey);
  CK_RV (* C_Sign)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                   CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen);
  CK_RV (* C_SignUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen);
  CK_RV (* C_SignFinal)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
                        CK_ULONG_PTR pulSignatureLen);
  CK_RV (* C_SignRecoverInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                              CK_OBJECT_HANDLE hKey);
  CK_RV (* C_SignRecover)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                          CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen);
  CK_RV (* C_VerifyInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                         CK_OBJECT_HANDLE hKey);
  CK_RV (* C_Verify)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                     CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen);
  CK_RV (* C_VerifyUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen);
  CK_RV (* C_VerifyFinal)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
                          CK_ULONG ulSignatureLen);
  CK_RV (* C_VerifyRecoverInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                                CK_OBJECT_HANDLE hKey);
  CK_RV (* C_VerifyRecover)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
                            CK_ULONG ulSignatureLen, CK_BYTE_PTR pData,
                            CK_ULONG_PTR pulDataLen);
  CK_RV (* C_DigestEncryptUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
                                  CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart,
                                  CK_ULONG_PTR pulEncryptedPartLen);
  CK_RV (* C_DecryptDigestUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart,
                                  CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart,
                                  CK_ULONG_PTR pulPartLen);
  CK_RV (* C_SignEncryptUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
                                CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart,
                                CK_ULONG_PTR pulEncryptedPartLen);
  CK_RV (* C_DecryptVerifyUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart,
                                  CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart,
                                  CK_ULONG_PTR pulPartLen);
  CK_RV (* C_GenerateKey)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                          CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                          CK_OBJECT_HANDLE_PTR phKey);
  CK_RV (* C_GenerateKeyPair)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                              CK_ATTRIBUTE_PTR pPublicKeyTemplate,
                              CK_ULONG ulPublicKeyAttributeCount,
                              CK_ATTRIBUTE_PTR pPrivateKeyTemplate,
                              CK_ULONG ulPrivateKeyAttributeCount,
                              CK_OBJECT_HANDLE_PTR phPublicKey,
                              CK_OBJECT_HANDLE_PTR phPrivateKey);
  CK_RV (* C_WrapKey)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                      CK_OBJECT_HANDLE hWrappingKey, CK_OBJECT_HANDLE hKey,
                      CK_BYTE_PTR pWrappedKey, CK_ULONG_PTR pulWrappedKeyLen);
  CK_RV (* C_UnwrapKey)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                        CK_OBJECT_HANDLE hUnwrappingKey, CK_BYTE_PTR pWrappedKey,
                        CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE_PTR pTemplate,
                        CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey);
  CK_RV (* C_DeriveKey)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                        CK_OBJECT_HANDLE hBaseKey, CK_ATTRIBUTE_PTR pTemplate,
                        CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey);
  CK_RV (* C_SeedRandom)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSeed, CK_ULONG ulSeedLen);
  CK_RV (* C_GenerateRandom)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR RandomData,
                             CK_ULONG ulRandomLen);
  CK_RV (* C_GetFunctionStatus)(CK_SESSION_HANDLE hSession);
  CK_RV (* C_CancelFunction)(CK_SESSION_HANDLE hSession);
  CK_RV (* C_WaitForSlotEvent)(CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pReserved);
};

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList);
"""

ffi = FFI()
ffi.cdef(_DECLARATIONS)
